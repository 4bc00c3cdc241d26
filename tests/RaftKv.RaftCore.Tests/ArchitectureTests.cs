using System.Reflection;
using RaftKv.Node;

namespace RaftKv.RaftCore.Tests;

/// <summary>Dependencies point one way (DESIGN.md): the protocol knows nothing of threads, files, HTTP, gRPC or KV.</summary>
public sealed class ArchitectureTests
{
    private static string[] ReferencesOf(Assembly assembly) =>
        [.. assembly.GetReferencedAssemblies().Select(a => a.Name!).Where(n => !n.StartsWith("System", StringComparison.Ordinal) && n != "netstandard")];

    [Fact]
    public void The_protocol_core_depends_on_the_base_library_only()
    {
        ReferencesOf(typeof(RaftNode).Assembly).Should().BeEmpty();
    }

    [Fact]
    public void The_node_loop_depends_on_the_core_and_logging_abstractions_only()
    {
        ReferencesOf(typeof(RaftLoop).Assembly).Should().BeEquivalentTo(["RaftKv.RaftCore", "Microsoft.Extensions.Logging.Abstractions"]);
    }

    [Fact]
    public void Storage_depends_on_the_core_hashing_and_logging_only()
    {
        ReferencesOf(typeof(RaftKv.Storage.WalLogStore).Assembly).Should().BeEquivalentTo(["RaftKv.RaftCore", "Microsoft.Extensions.Logging.Abstractions"]);
    }

    [Fact]
    public void The_state_machine_depends_on_the_core_only()
    {
        ReferencesOf(typeof(RaftKv.StateMachine.KvStateMachine).Assembly).Should().BeEquivalentTo(["RaftKv.RaftCore"]);
    }

    [Fact]
    public void The_transport_depends_on_the_core_and_grpc_and_keeps_protobuf_types_inside()
    {
        var transport = typeof(RaftKv.Transport.GrpcTransport).Assembly;

        // RaftKv.Contracts: the TLS trust peers share with clients (TlsTrust), nothing of the wire contracts.
        ReferencesOf(transport).Should().OnlyContain(name => name == "RaftKv.RaftCore" || name == "RaftKv.Contracts"
            || name.StartsWith("Grpc.", StringComparison.Ordinal) || name == "Google.Protobuf" || name.StartsWith("Microsoft.", StringComparison.Ordinal));
        transport.GetExportedTypes().Should().NotContain(t => t.Namespace == "RaftKv.Transport.Protos", "protobuf types stay at the edge");
    }

    [Fact]
    public void The_core_uses_no_threading_or_io_types_at_all()
    {
        var forbidden = new[] { "System.Threading.Tasks", "System.Threading.Channels", "System.Net", "System.IO.File" };
        var used = typeof(RaftNode).Assembly.GetTypes()
            .SelectMany(t => t.GetFields(BindingFlags.Instance | BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public).Select(f => f.FieldType))
            .Select(t => t.Namespace ?? "")
            .Where(ns => forbidden.Any(f => ns.StartsWith(f, StringComparison.Ordinal)))
            .ToList();

        used.Should().BeEmpty();
    }
}
