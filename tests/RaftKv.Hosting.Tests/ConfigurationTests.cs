using System.Collections;
using System.Globalization;
using Microsoft.Extensions.Configuration;
using RaftKv.Node;
using RaftKv.RaftCore;
using RaftKv.StateMachine;
using RaftKv.Storage;
using RaftKv.Transport;

namespace RaftKv.Hosting.Tests;

public sealed class ConfigurationTests
{
    /// <summary>The sections of the KV server: the runtime's five and the application's own.</summary>
    private static readonly SettingsSection[] Sections =
    [
        new("Node", typeof(NodeOptions)),
        new("Raft", typeof(RaftOptions)),
        new("Loop", typeof(NodeLoopOptions)),
        new("Storage", typeof(StorageOptions)),
        new("Transport", typeof(TransportOptions)),
        new("Kv", typeof(KvOptions)),
    ];

    [Fact]
    public void An_environment_variable_RAFTKV_Section__Name_sets_that_setting_and_nothing_else_is_read()
    {
        var variables = new Hashtable
        {
            ["RAFTKV_Node__TickMs"] = "50",
            ["raftkv_Transport__OutboxCapacity"] = "12",
            ["RAFTKV_ENDPOINTS"] = "http://127.0.0.1:8081", // the client's, not a setting
            ["OTHER__Thing"] = "x",
            ["RaftKv__Node__DataDir"] = "/var/lib/raftkv", // ASP.NET Core's form, read by its own environment source
        };

        var configuration = new ConfigurationBuilder().AddRaftKvEnvironment(variables).Build();

        configuration["RaftKv:Node:TickMs"].Should().Be("50");
        configuration["RaftKv:Transport:OutboxCapacity"].Should().Be("12");
        configuration.AsEnumerable().Where(kv => kv.Value is not null).Should().HaveCount(2);
    }

    [Fact]
    public void A_container_variable_RaftKv__Section__Name_is_left_to_aspnet_and_the_earlier_form_is_still_refused()
    {
        var variables = new Hashtable { ["RaftKv__Node__DataDir"] = "/var/lib/raftkv", ["RAFTKV__RaftKv__TickMs"] = "50" };

        var configuration = new ConfigurationBuilder().AddRaftKvEnvironment(variables).Build();

        // ASP.NET Core's own environment source reads RaftKv__Node__DataDir as RaftKv:Node:DataDir; this one must not read
        // it again as a section "_Node" (which stopped every container at start). The earlier form names "_RaftKv": refused.
        configuration.GetSection("RaftKv").GetChildren().Select(c => c.Key).Should().Equal("_RaftKv");
    }

    [Theory]
    [InlineData("--tick-ms", "RaftKv:Node:TickMs")]
    [InlineData("--TickMs", "RaftKv:Node:TickMs")]
    [InlineData("--node-id", "RaftKv:Node:NodeId")]
    [InlineData("--data-dir", "RaftKv:Node:DataDir")]
    [InlineData("--election-timeout-ticks", "RaftKv:Raft:ElectionTimeoutTicks")]
    [InlineData("--snapshot-threshold-entries", "RaftKv:Loop:SnapshotThresholdEntries")]
    [InlineData("--segment-bytes", "RaftKv:Storage:SegmentBytes")]
    [InlineData("--reconnect-max-delay-ms", "RaftKv:Transport:ReconnectMaxDelayMs")]
    [InlineData("--max-sessions", "RaftKv:Kv:MaxSessions")]
    public void Every_setting_has_a_switch_by_name_and_in_kebab_case(string flag, string key)
    {
        RaftConfiguration.SwitchMappings(Sections).Should().Contain(flag, key);
    }

    [Fact]
    public void The_command_line_sets_a_setting_over_the_environment()
    {
        var switches = RaftConfiguration.SwitchMappings(Sections);
        var configuration = new ConfigurationBuilder()
            .AddRaftKvEnvironment(new Hashtable { ["RAFTKV_Node__TickMs"] = "50" })
            .AddCommandLine(["--tick-ms", "20", "--MaxSessions=7"], switches)
            .Build();

        configuration["RaftKv:Node:TickMs"].Should().Be("20");
        configuration["RaftKv:Kv:MaxSessions"].Should().Be("7");
    }

    [Fact]
    public void A_switch_that_names_no_setting_is_found_and_known_ones_are_not()
    {
        var switches = RaftConfiguration.SwitchMappings(Sections);

        var unknown = RaftConfiguration.UnknownSwitches(
            ["--tick-ms", "20", "--tick-mss", "5", "--MaxSessions=7", "--RaftKv:Node:Peer=http://127.0.0.1:9", "--environment=Development", "stray"], switches);

        unknown.Should().Equal("--tick-mss", "stray");
    }

    [Fact]
    public void A_switch_left_without_a_value_is_refused_rather_than_dropped()
    {
        var switches = RaftConfiguration.SwitchMappings(Sections);

        RaftConfiguration.UnknownSwitches(["--data-dir"], switches).Should().Equal("--data-dir (no value)");
        RaftConfiguration.UnknownSwitches(["--data-dir", "--tick-ms", "5"], switches).Should().Equal("--data-dir (no value)");
    }

    [Theory]
    [InlineData("RaftKv:Node:Id", "n2")]
    [InlineData("RaftKv:Node:TickMss", "5")]
    [InlineData("RaftKv:Node:HttpUrl", "http://127.0.0.1:1")]
    public void A_key_that_is_no_setting_of_its_section_is_refused_even_when_the_options_have_such_a_property(string key, string value)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection([new(key, value)]).Build();
        var section = new SettingsSection("Node", typeof(NodeOptions));
        var binder = new SectionBinder<NodeOptions>(section, configuration);
        var options = new NodeOptions();

        binder.Configure(options);
        var result = new SectionValidator<NodeOptions>(section, binder).Validate(null, options);

        result.Failed.Should().BeTrue();
        result.FailureMessage.Should().StartWith("RaftKv:Node: " + key.Split(':')[^1] + ": not a setting");
    }

    [Fact]
    public void A_section_no_component_reads_and_a_switch_that_sets_nothing_are_refused()
    {
        var configuration = new ConfigurationBuilder()
            .AddRaftKvEnvironment(new Hashtable { ["RAFTKV_Nod__TickMs"] = "50", ["RAFTKV_Node__TickMs"] = "50" })
            .Build();
        var validator = new UnreadSettingsValidator(["--tick-mss"], Sections, configuration);

        var result = validator.Validate(null, new NodeOptions());

        result.Failures.Should().BeEquivalentTo(
            "command line: '--tick-mss' is not a setting (see docs/configuration.md)",
            "RaftKv:Nod: no such section (the sections are Node, Raft, Loop, Storage, Transport, Kv)");
    }

    [Fact]
    public void Two_sections_with_a_setting_of_the_same_name_are_refused()
    {
        var clash = () => RaftConfiguration.SwitchMappings([.. Sections, new SettingsSection("Other", typeof(NodeLoopOptions))]);

        clash.Should().Throw<InvalidOperationException>().WithMessage("*--InboxCapacity would set both RaftKv:Loop:InboxCapacity and RaftKv:Other:InboxCapacity*");
    }

    [Fact]
    public void Docs_configuration_md_lists_every_setting_with_its_default()
    {
        var doc = File.ReadAllText(Path.Combine(Repository(), "docs", "configuration.md"));
        var missing = new List<string>();
        foreach (var section in Sections)
        {
            foreach (var (name, _, value) in section.Settings())
            {
                var row = $"| `{name}` | `{Show(value)}` |";
                if (!doc.Contains(row, StringComparison.Ordinal))
                {
                    missing.Add($"{section.Path}:{name} (expected a row starting {row})");
                }
            }
        }

        missing.Should().BeEmpty("docs/configuration.md lists every setting with its default");
    }

    private static string Show(object? value) => value switch
    {
        "" => "\"\"",
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value?.ToString() ?? "",
    };

    private static string Repository()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "RaftKv.sln")))
        {
            directory = directory.Parent;
        }
        return directory?.FullName ?? throw new InvalidOperationException("RaftKv.sln not found");
    }
}
