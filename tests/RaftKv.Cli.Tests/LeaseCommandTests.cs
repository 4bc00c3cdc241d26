using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace RaftKv.Cli.Tests;

/// <summary>raft-cli lease grant|keepalive|revoke|info and set --lease, as processes against a real server.</summary>
[Collection(LeaseServerCollection.Name)]
public sealed class LeaseCommandTests(LeaseServer server, ITestOutputHelper output)
{
    private Task<Cli.Result> RunAsync(params string[] arguments) => Cli.RunAsync(["--endpoints", server.Endpoints, .. arguments]);

    [Fact]
    public async Task A_key_set_with_a_lease_is_listed_by_info_and_goes_when_the_lease_is_revoked()
    {
        var grant = await RunAsync("lease", "grant", "60", "--output", "json");
        grant.ExitCode.Should().Be(0, grant.ToString());
        ulong id;
        using (var json = JsonDocument.Parse(grant.Output))
        {
            id = json.RootElement.GetProperty("id").GetUInt64();
            json.RootElement.GetProperty("ttl").GetInt64().Should().Be(60);
            json.RootElement.GetProperty("index").GetUInt64().Should().Be(id, "a lease's id is the index that granted it");
            json.RootElement.GetProperty("leader").GetString().Should().Be("n1");
        }
        var lease = id.ToString(System.Globalization.CultureInfo.InvariantCulture);

        var set = await RunAsync("set", "cli/leased", "v", "--lease", lease);
        var plain = await RunAsync("set", "cli/plain", "v");
        var info = await RunAsync("lease", "info", lease);
        var infoJson = await RunAsync("lease", "info", lease, "--output", "json");
        var once = await RunAsync("lease", "keepalive", lease, "--once");
        var onceJson = await RunAsync("lease", "keepalive", lease, "--once", "--output", "json");
        var revoke = await RunAsync("lease", "revoke", lease, "--output", "json");

        set.ExitCode.Should().Be(0, set.ToString());
        set.Output.Should().StartWith("OK: cli/leased written at index ").And.Contain($"with lease {lease}");
        info.ExitCode.Should().Be(0, info.ToString());
        info.Output.Split('\n').Should().HaveCount(2);
        info.Output.Should().StartWith($"lease {lease}: TTL 60 s, ").And.EndWith(" s remaining, 1 key\ncli/leased");
        using (var json = JsonDocument.Parse(infoJson.Output))
        {
            json.RootElement.GetProperty("keys").EnumerateArray().Select(k => k.GetString()).Should().Equal("cli/leased");
            json.RootElement.GetProperty("keyCount").GetInt32().Should().Be(1);
            json.RootElement.GetProperty("remaining").GetDouble().Should().BeInRange(0, 60);
        }
        once.ExitCode.Should().Be(0, once.ToString());
        once.Output.Should().Be($"OK: lease {lease} kept alive, TTL 60 s");
        using (var json = JsonDocument.Parse(onceJson.Output))
        {
            json.RootElement.GetProperty("ttl").GetInt64().Should().Be(60);
            json.RootElement.TryGetProperty("index", out _).Should().BeFalse("a keepalive writes nothing to the log");
        }
        revoke.ExitCode.Should().Be(0, revoke.ToString());
        JsonDocument.Parse(revoke.Output).RootElement.GetProperty("deleted").GetInt32().Should().Be(1);

        var gone = await RunAsync("get", "cli/leased");
        var kept = await RunAsync("get", "cli/plain");
        var infoAfter = await RunAsync("lease", "info", lease);
        var revokeAgain = await RunAsync("lease", "revoke", lease);
        var keepAfter = await RunAsync("lease", "keepalive", lease, "--once");
        var setAfter = await RunAsync("set", "cli/late", "v", "--lease", lease);

        gone.ExitCode.Should().Be(3, "the key went with its lease: {0}", gone);
        kept.Output.Should().Be("v", "a key without the lease stays");
        foreach (var missing in new[] { infoAfter, revokeAgain, keepAfter, setAfter })
        {
            missing.ExitCode.Should().Be(9, missing.ToString());
            missing.Error.Should().Be($"raft-cli: lease {lease} not found: never granted, revoked, or expired");
        }
        (await RunAsync("get", "cli/late")).ExitCode.Should().Be(3, "a write with a lease that is gone writes nothing");
    }

    [Fact]
    public async Task A_lease_that_nobody_keeps_alive_expires_and_takes_its_key()
    {
        var grant = await RunAsync("lease", "grant", "1", "--output", "json");
        var lease = JsonDocument.Parse(grant.Output).RootElement.GetProperty("id").GetUInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
        (await RunAsync("set", "cli/expiring", "v", "--lease", lease)).ExitCode.Should().Be(0);
        var clock = Stopwatch.StartNew();

        Cli.Result get;
        do
        {
            await Task.Delay(250);
            get = await RunAsync("get", "cli/expiring");
        }
        while (get.ExitCode == 0 && clock.Elapsed < TimeSpan.FromSeconds(10));

        output.WriteLine($"the key was gone {clock.Elapsed.TotalSeconds:F1} s after it was written with a 1 s lease");
        get.ExitCode.Should().Be(3, "the lease expired within 10 s and took its key: {0}", get);
        (await RunAsync("lease", "info", lease)).ExitCode.Should().Be(9);
    }

    [Fact]
    public async Task Keepalive_prints_a_line_per_keepalive_until_the_lease_is_revoked_then_exits_9()
    {
        var grant = await RunAsync("lease", "grant", "3", "--output", "json");
        var lease = JsonDocument.Parse(grant.Output).RootElement.GetProperty("id").GetUInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);

        var keeping = RunAsync("lease", "keepalive", lease); // one keepalive now, then one a second (TTL/3)
        await Task.Delay(TimeSpan.FromSeconds(3.5));
        var revoke = await RunAsync("lease", "revoke", lease);
        var kept = await keeping.WaitAsync(TimeSpan.FromSeconds(20));

        revoke.ExitCode.Should().Be(0, revoke.ToString());
        kept.ExitCode.Should().Be(9, kept.ToString());
        var lines = kept.Output.Split('\n');
        lines.Length.Should().BeGreaterThanOrEqualTo(2, kept.ToString());
        lines.Should().AllBe($"lease {lease} kept alive, TTL 3 s");
        kept.Error.Should().Be($"raft-cli: lease {lease} not found: never granted, revoked, or expired");
    }

    [Theory]
    [InlineData("lease grant: '0' is not a TTL (whole seconds from 1)", "lease", "grant", "0")]
    [InlineData("lease grant: 'ten' is not a TTL (whole seconds from 1)", "lease", "grant", "ten")]
    [InlineData("lease info: 'abc' is not a lease id (a whole number from 1)", "lease", "info", "abc")]
    [InlineData("lease revoke: '0' is not a lease id (a whole number from 1)", "lease", "revoke", "0")]
    [InlineData("lease keepalive: '1.5' is not a lease id (a whole number from 1)", "lease", "keepalive", "1.5", "--once")]
    [InlineData("--lease: 'abc' is not a lease id (a whole number from 1)", "set", "k", "v", "--lease", "abc")]
    public async Task Bad_lease_input_is_one_line_and_exit_code_2(string message, params string[] arguments)
    {
        var result = await RunAsync(arguments);

        result.ExitCode.Should().Be(2, result.ToString());
        result.Error.Should().Be("raft-cli: " + message);
        result.Output.Should().BeEmpty();
    }

    [Fact]
    public async Task Help_documents_the_lease_commands_and_exit_code_9()
    {
        var help = await Cli.RunAsync("--help");
        var leaseHelp = await Cli.RunAsync("lease", "--help");

        help.Output.Should().Contain("9  lease not found").And.Contain("lease");
        leaseHelp.ExitCode.Should().Be(0);
        leaseHelp.Output.Should().Contain("grant").And.Contain("keepalive").And.Contain("revoke").And.Contain("info")
            .And.Contain("raft-cli set services/web 10.0.0.1 --lease 7");
    }
}
