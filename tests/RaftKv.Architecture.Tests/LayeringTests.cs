using Xunit.Abstractions;

namespace RaftKv.Architecture.Tests;

/// <summary>
/// Dependencies point one way (DESIGN.md, "Projects"): the protocol knows nothing of threads, files, HTTP, gRPC or KV; the
/// node runtime knows bytes, never keys and values; applications sit on the runtime; the client knows the wire contracts
/// and nothing of the server. Every shipped project (src/, samples/) must be in <see cref="Allowed"/>: adding a project
/// means placing it in the layering here, on purpose.
/// </summary>
public sealed class LayeringTests(ITestOutputHelper output)
{
    private const string AspNetCore = "Microsoft.AspNetCore.App";

    /// <summary>The project references each shipped project may have, and whether it may use ASP.NET Core.</summary>
    private static readonly Dictionary<string, (string[] Projects, bool AspNetCore, string Why)> Allowed = new(StringComparer.Ordinal)
    {
        ["RaftKv.RaftCore"] = ([], false, "the protocol core is pure: the base library only"),
        ["RaftKv.Storage"] = (["RaftKv.RaftCore"], false, "storage implements the core's log and snapshot interfaces"),
        ["RaftKv.Transport"] = (["RaftKv.RaftCore", "RaftKv.Contracts"], true,
            "the peer transport maps the core's messages to gRPC, and trusts peers' certificates as clients trust nodes (TlsTrust)"),
        ["RaftKv.Node"] = (["RaftKv.RaftCore"], false, "the node loop drives the core through its interfaces"),
        ["RaftKv.StateMachine"] = (["RaftKv.RaftCore"], false, "the KV state machine implements the core's IStateMachine"),
        ["RaftKv.Contracts"] = ([], false, "the wire shapes depend on nothing"),
        ["RaftKv.Hosting"] = (["RaftKv.Contracts", "RaftKv.Node", "RaftKv.RaftCore", "RaftKv.Storage", "RaftKv.Transport"], true,
            "the node runtime hosts any state machine and never references the KV application"),
        ["RaftKv.Server"] = (["RaftKv.Contracts", "RaftKv.Hosting", "RaftKv.StateMachine"], true, "the KV application sits on the runtime"),
        ["RaftKv.Client"] = (["RaftKv.Contracts"], false, "the client knows the wire contracts, never the server"),
        ["RaftKv.Cli"] = (["RaftKv.Client", "RaftKv.Storage"], false,
            "raft-cli talks through the client, reads snapshot files and lays out restored data directories (storage), and does not pull in ASP.NET Core"),
        ["RaftKv.Samples.Counter"] = (["RaftKv.Hosting"], true, "a sample application needs the runtime only"),
        ["RaftKv.Samples.Coordination"] = (["RaftKv.Client"], false, "a lock and an election for a .NET service, on the client alone"),
    };

    private static readonly ProjectGraph Graph = ProjectGraph.Load(ProjectGraph.FindRepository());

    [Fact]
    public void Every_shipped_project_has_a_place_in_the_layering()
    {
        var shipped = Graph.Projects.Values.Where(p => p.Folder is "src" or "samples" && !p.Name.EndsWith(".Tests", StringComparison.Ordinal)).Select(p => p.Name);

        shipped.Should().BeSubsetOf(Allowed.Keys, "a new project is placed in LayeringTests.Allowed on purpose");
        Allowed.Keys.Should().BeSubsetOf(Graph.Projects.Keys, "the table names only projects that exist");
    }

    [Fact]
    public void Every_project_references_only_what_its_layer_allows()
    {
        foreach (var line in Graph.Lines(p => Allowed.ContainsKey(p.Name)))
        {
            output.WriteLine(line);
        }

        Violations().Should().BeEmpty();
    }

    [Theory]
    [InlineData("RaftKv.Hosting", "RaftKv.Server", "the runtime never references the KV application")]
    [InlineData("RaftKv.Hosting", "RaftKv.StateMachine", "the runtime knows bytes, not keys and values")]
    [InlineData("RaftKv.Client", "RaftKv.Server", "the client never references the server")]
    [InlineData("RaftKv.Client", "RaftKv.Hosting", "the client never references the node runtime")]
    [InlineData("RaftKv.Cli", "RaftKv.Server", "raft-cli is a client")]
    [InlineData("RaftKv.Samples.Counter", "RaftKv.Server", "a sample is built on the runtime, not on the KV application")]
    [InlineData("RaftKv.Samples.Counter", "RaftKv.StateMachine", "a sample brings its own state machine")]
    [InlineData("RaftKv.RaftCore", "RaftKv.Node", "the core knows nothing of the loop")]
    public void A_project_never_reaches_another_even_through_a_third(string project, string forbidden, string why)
    {
        Graph.Reachable(project).Should().NotContain(forbidden, why);
    }

    [Fact]
    public void Raft_cli_does_not_pull_in_ASP_NET_Core_through_any_project()
    {
        var withAspNet = Graph.Reachable("RaftKv.Cli").Append("RaftKv.Cli").Where(p => Graph.Projects[p].Frameworks.Contains(AspNetCore));

        withAspNet.Should().BeEmpty("the benchmark's do-nothing endpoint is built on sockets, not on Kestrel");
    }

    /// <summary>What breaks the table, one readable line each.</summary>
    private static List<string> Violations()
    {
        var violations = new List<string>();
        foreach (var (name, rule) in Allowed)
        {
            if (!Graph.Projects.TryGetValue(name, out var project))
            {
                continue;
            }
            foreach (var reference in project.Projects.Except(rule.Projects))
            {
                violations.Add($"{name} references {reference}, which its layer forbids: {rule.Why} (allowed: {(rule.Projects.Length == 0 ? "nothing" : string.Join(", ", rule.Projects))})");
            }
            if (!rule.AspNetCore && project.Frameworks.Contains(AspNetCore))
            {
                violations.Add($"{name} references {AspNetCore}, which its layer forbids: {rule.Why}");
            }
        }
        return violations;
    }
}
