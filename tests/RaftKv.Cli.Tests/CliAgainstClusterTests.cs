using System.Text.Json;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cli.Tests;

/// <summary>raft-cli as a process against three real server processes.</summary>
public sealed class CliAgainstClusterTests(ITestOutputHelper output) : IAsyncLifetime
{
    private LocalCluster _cluster = null!;
    private string _endpoints = "";

    public async Task InitializeAsync()
    {
        _cluster = await LocalCluster.StartAsync(3);
        await _cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(15));
        _endpoints = Cli.Endpoints(_cluster);
    }

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task Set_get_delete_and_cas_round_trip_with_their_exit_codes()
    {
        var set = await Cli.RunAsync("--endpoints", _endpoints, "set", "mykey", "myvalue");
        var get = await Cli.RunAsync("--endpoints", _endpoints, "get", "mykey");
        var mismatch = await Cli.RunAsync("--endpoints", _endpoints, "cas", "mykey", "wrong", "new");
        var cas = await Cli.RunAsync("--endpoints", _endpoints, "cas", "mykey", "myvalue", "new");
        var afterCas = await Cli.RunAsync("--endpoints", _endpoints, "get", "mykey", "--consistency", "stale");
        var delete = await Cli.RunAsync("--endpoints", _endpoints, "delete", "mykey");
        var missing = await Cli.RunAsync("--endpoints", _endpoints, "get", "mykey");

        set.ExitCode.Should().Be(0, set.ToString());
        set.Output.Should().StartWith("OK: mykey written at index");
        get.ExitCode.Should().Be(0);
        get.Output.Should().Be("myvalue");
        mismatch.ExitCode.Should().Be(4, mismatch.ToString());
        mismatch.Error.Should().Contain("cas mismatch").And.Contain("'myvalue'");
        cas.ExitCode.Should().Be(0, cas.ToString());
        afterCas.Output.Should().BeOneOf("new", "myvalue"); // a stale read may not have caught up yet
        delete.ExitCode.Should().Be(0);
        delete.Output.Should().StartWith("OK: mykey deleted");
        missing.ExitCode.Should().Be(3, missing.ToString());
        missing.Error.Should().Be("raft-cli: mykey: not found");
    }

    [Fact]
    public async Task List_shows_a_prefix_in_key_order_counts_it_and_pages_through_all_of_it()
    {
        foreach (var (key, value) in new[] { ("svc/web", "10.0.0.1"), ("svc/api", "10.0.0.2"), ("svc/db", "multi\nline"), ("svcx", "no") })
        {
            (await Cli.RunAsync("--endpoints", _endpoints, "set", key, value)).ExitCode.Should().Be(0);
        }

        var listed = await Cli.RunAsync("--endpoints", _endpoints, "list", "svc/");
        var cut = await Cli.RunAsync("--endpoints", _endpoints, "list", "svc/", "--limit", "2");
        var paged = await Cli.RunAsync("--endpoints", _endpoints, "list", "svc/", "--limit", "1", "--all", "--output", "json");
        var counted = await Cli.RunAsync("--endpoints", _endpoints, "list", "svc", "--count");
        var none = await Cli.RunAsync("--endpoints", _endpoints, "list", "nothing/");

        listed.ExitCode.Should().Be(0);
        listed.Output.Should().Be("svc/api\t10.0.0.2\nsvc/db\tmulti\\nline\nsvc/web\t10.0.0.1");
        cut.Output.Split('\n').Should().HaveCount(2);
        cut.Error.Should().Contain("2 of 3 keys shown; more after 'svc/db'");
        paged.ExitCode.Should().Be(0);
        using (var json = System.Text.Json.JsonDocument.Parse(paged.Output))
        {
            json.RootElement.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("key").GetString()).Should().Equal("svc/api", "svc/db", "svc/web");
        }
        counted.Output.Should().Be("4");
        none.ExitCode.Should().Be(3, "no key has the prefix");
    }

    [Fact]
    public async Task Txn_takes_a_lock_once_and_the_second_taker_sees_the_owner_with_exit_code_4()
    {
        var file = Path.Combine(Path.GetTempPath(), "raftkv-txn-" + Guid.NewGuid().ToString("N") + ".json");
        try
        {
            await File.WriteAllTextAsync(file, """
                {"compare":[{"key":"cli/lock","target":"exists","exists":false}],
                 "success":[{"type":"PUT","key":"cli/lock","value":"first"}],
                 "failure":[{"type":"GET","key":"cli/lock"}]}
                """);

            var taken = await Cli.RunAsync("--endpoints", _endpoints, "txn", file);
            var refused = await Cli.RunAsync("--endpoints", _endpoints, "txn", file, "--output", "json");
            var broken = await Cli.RunAsync("--endpoints", _endpoints, "txn", file + ".missing");

            taken.ExitCode.Should().Be(0, taken.ToString());
            taken.Output.Should().StartWith("SUCCEEDED: the success branch ran at index ").And.Contain("PUT cli/lock (version ");
            refused.ExitCode.Should().Be(4, refused.ToString());
            using (var json = System.Text.Json.JsonDocument.Parse(refused.Output))
            {
                json.RootElement.GetProperty("succeeded").GetBoolean().Should().BeFalse();
                json.RootElement.GetProperty("results")[0].GetProperty("value").GetString().Should().Be("first");
            }
            broken.ExitCode.Should().Be(2);
            broken.Error.Should().Contain("does not exist");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Cas_by_version_creates_only_when_absent()
    {
        var create = await Cli.RunAsync("--endpoints", _endpoints, "cas", "lock", "0", "owner-a", "--version");
        var again = await Cli.RunAsync("--endpoints", _endpoints, "cas", "lock", "0", "owner-b", "--version");

        create.ExitCode.Should().Be(0, create.ToString());
        again.ExitCode.Should().Be(4, again.ToString());
        (await Cli.RunAsync("--endpoints", _endpoints, "get", "lock")).Output.Should().Be("owner-a");
    }

    [Fact]
    public async Task Status_shows_every_node_and_one_leader()
    {
        var table = await Cli.RunAsync("--endpoints", _endpoints, "status");
        var json = await Cli.RunAsync("--endpoints", _endpoints, "status", "--output", "json");
        var health = await Cli.RunAsync("--endpoints", _endpoints, "health");

        table.ExitCode.Should().Be(0, table.ToString());
        table.Output.Should().Contain("Leader").And.Contain("n1").And.Contain("n2").And.Contain("n3");
        var nodes = JsonDocument.Parse(json.Output).RootElement.EnumerateArray().Select(e => e.GetProperty("status")).ToList();
        nodes.Should().HaveCount(3);
        nodes.Count(n => n.GetProperty("role").GetString() == "Leader").Should().Be(1);
        health.ExitCode.Should().Be(0, health.ToString());
        output.WriteLine(table.Output);
    }

    [Fact]
    public async Task A_write_retried_with_its_session_after_a_leader_change_is_applied_once()
    {
        // A script writes with its own session, the leader dies, and the script retries the same write elsewhere.
        var first = await Cli.RunAsync("--endpoints", _endpoints, "set", "once", "v1", "--client-id", "script-1", "--seq", "1", "--output", "json");
        first.ExitCode.Should().Be(0, first.ToString());
        var firstIndex = JsonDocument.Parse(first.Output).RootElement.GetProperty("index").GetUInt64();
        var leader = await _cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(5));
        await leader.KillAsync();
        var survivors = string.Join(',', _cluster.Nodes.Where(n => n != leader).Select(n => n.BaseAddress.ToString().TrimEnd('/')));
        await _cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(10), _cluster.Nodes.Where(n => n != leader));
        var other = await Cli.RunAsync("--endpoints", survivors, "set", "once", "v2");
        other.ExitCode.Should().Be(0, other.ToString());

        var retry = await Cli.RunAsync("--endpoints", survivors, "set", "once", "v1", "--client-id", "script-1", "--seq", "1", "--output", "json");
        var read = await Cli.RunAsync("--endpoints", survivors, "get", "once");

        retry.ExitCode.Should().Be(0, retry.ToString());
        JsonDocument.Parse(retry.Output).RootElement.GetProperty("index").GetUInt64().Should().Be(firstIndex, "the retry gets the first answer");
        read.Output.Should().Be("v2", "the retry did not write v1 over the later write");
    }

    [Fact]
    public async Task The_benchmark_finishes_and_prints_percentiles_errors_and_settings()
    {
        var table = await Cli.RunAsync("--endpoints", _endpoints, "benchmark", "--operations", "300", "--clients", "8", "--read-ratio", "0.5");
        var json = await Cli.RunAsync("--endpoints", _endpoints, "benchmark", "--operations", "200", "--clients", "4", "--output", "json");

        table.ExitCode.Should().Be(0, table.ToString());
        table.Output.Should().Contain("throughput").And.Contain("p50").And.Contain("p99.9").And.Contain("max").And.Contain("8 clients");
        json.ExitCode.Should().Be(0, json.ToString());
        var report = JsonDocument.Parse(json.Output.Split('\n')[^1]).RootElement;
        report.GetProperty("operations").GetInt64().Should().Be(200);
        report.GetProperty("errors").GetInt64().Should().Be(0);
        report.GetProperty("p99Ms").GetDouble().Should().BeGreaterThan(0);
        report.GetProperty("settings").GetProperty("clients").GetInt32().Should().Be(4);
        output.WriteLine(table.Output);
    }
}
