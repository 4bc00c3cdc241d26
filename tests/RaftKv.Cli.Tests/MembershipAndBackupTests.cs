using System.Net;
using System.Text.Json;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cli.Tests;

/// <summary>
/// raft-cli member, leader and snapshot against real server processes: the tables, --output json and exit codes, a backup
/// restored into a new cluster, and a survivor forced into a cluster of its own when the majority is gone.
/// </summary>
public sealed class MembershipAndBackupTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Member_and_leader_commands_show_the_members_and_refuse_what_cannot_be_done_with_their_exit_codes()
    {
        await using var cluster = await LocalCluster.StartAsync(3);
        await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        var endpoints = Cli.Endpoints(cluster);

        var list = await Cli.RunAsync("--endpoints", endpoints, "member", "list");
        list.ExitCode.Should().Be(0, list.ToString());
        list.Output.Should().Contain("n1").And.Contain("n2").And.Contain("n3").And.Contain("voter").And.Contain("cluster ");

        var json = await Cli.RunAsync("--endpoints", endpoints, "--output", "json", "member", "list");
        json.ExitCode.Should().Be(0, json.ToString());
        var members = JsonDocument.Parse(json.Output).RootElement;
        members.GetProperty("members").EnumerateArray().Select(m => m.GetProperty("id").GetString()).Should().Equal("n1", "n2", "n3");
        members.GetProperty("clusterId").GetString().Should().MatchRegex("^[0-9a-f]{16}$");

        var badUrl = await Cli.RunAsync("--endpoints", endpoints, "member", "add", "n4", "--peer-url", "ftp://x");
        badUrl.ExitCode.Should().Be(2, badUrl.ToString());
        var unknown = await Cli.RunAsync("--endpoints", endpoints, "member", "remove", "n9");
        unknown.ExitCode.Should().Be(7, unknown.ToString());
        unknown.Error.Should().Contain("n9 is not a member");
        var promoteVoter = await Cli.RunAsync("--endpoints", endpoints, "member", "promote", "n2");
        promoteVoter.ExitCode.Should().Be(7, promoteVoter.ToString());
        promoteVoter.Error.Should().Contain("n2 is already a voter");

        // A learner whose machine never starts: it is added (learners never count), but never caught up, so never promoted.
        var port = FreePorts.Take(1)[0];
        var added = await Cli.RunAsync("--endpoints", endpoints, "member", "add", "n4", "--peer-url", $"http://127.0.0.1:{port}");
        added.ExitCode.Should().Be(0, added.ToString());
        added.Output.Should().Contain("n4").And.Contain("learner");
        var notCaughtUp = await Cli.RunAsync("--endpoints", endpoints, "member", "promote", "n4");
        notCaughtUp.ExitCode.Should().Be(8, notCaughtUp.ToString());
        notCaughtUp.Error.Should().Contain("refused for now").And.Contain("n4 has not answered this leader yet");
        var twice = await Cli.RunAsync("--endpoints", endpoints, "member", "add", "n4", "--peer-url", $"http://127.0.0.1:{port}");
        twice.ExitCode.Should().Be(7, twice.ToString());
        var removed = await Cli.RunAsync("--endpoints", endpoints, "member", "remove", "n4");
        removed.ExitCode.Should().Be(0, removed.ToString());
        removed.Output.Should().NotContain("n4");

        var transfer = await Cli.RunAsync("--endpoints", endpoints, "leader", "transfer", "--to", "n2");
        transfer.ExitCode.Should().Be(0, transfer.ToString());
        transfer.Output.Should().Contain("n2 leads");
        (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(10))).NodeId.Should().Be("n2");
        var nobody = await Cli.RunAsync("--endpoints", endpoints, "leader", "transfer", "--to", "n9");
        nobody.ExitCode.Should().Be(7, nobody.ToString());
    }

    [Fact]
    public async Task A_backup_of_a_live_cluster_restores_into_a_new_cluster_with_every_acknowledged_key_and_the_same_digest()
    {
        await using var cluster = await LocalCluster.StartAsync(3, ["--snapshot-threshold-entries", "50", "--snapshot-keep-entries", "5"]);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        var acknowledged = new Dictionary<string, string>();
        for (var i = 0; i < 120; i++)
        {
            using var response = await LocalCluster.SetInSessionAsync(leader, $"key-{i % 40}", $"value-{i}", "backup-test", (ulong)i + 1);
            if (response.StatusCode == HttpStatusCode.OK)
            {
                acknowledged[$"key-{i % 40}"] = $"value-{i}";
            }
        }
        acknowledged.Should().HaveCount(40);
        var scratch = Path.Combine(cluster.Directory, "restore");
        var backup = Path.Combine(scratch, "backup.snap");
        Directory.CreateDirectory(scratch);

        var save = await Cli.RunAsync("--endpoints", Cli.Endpoints(cluster), "--output", "json", "snapshot", "save", backup);

        save.ExitCode.Should().Be(0, save.ToString());
        output.WriteLine(save.Output);
        var saved = JsonDocument.Parse(save.Output).RootElement;
        var index = saved.GetProperty("index").GetUInt64();
        var source = await FaultRunDigestAsync(leader);
        source.Applied.Should().Be(index, "no write came after the backup, so it holds the cluster's state as it is");

        // A new cluster of three from the backup, on other ports: each member restored from the same file and member list.
        var ports = FreePorts.Take(6);
        var peers = string.Join(',', Enumerable.Range(0, 3).Select(i => $"n{i + 1}=http://127.0.0.1:{ports[3 + i]}"));
        var restored = new List<ServerProcess>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                var id = $"n{i + 1}";
                var dataDir = Path.Combine(scratch, id);
                var restore = await Cli.RunAsync("snapshot", "restore", backup, "--data-dir", dataDir, "--node-id", id, "--peers", peers);
                restore.ExitCode.Should().Be(0, restore.ToString());
                restore.Output.Should().Contain($"from the state at index {index}");
                restored.Add(ServerProcess.Start(id, ports[i], ports[3 + i], dataDir,
                    ["--node-id", id, "--peers", peers, "--http", $"http://127.0.0.1:{ports[i]}", "--data-dir", dataDir]));
            }
            var again = await Cli.RunAsync("snapshot", "restore", backup, "--data-dir", Path.Combine(scratch, "n1"), "--node-id", "n1", "--peers", peers);
            again.ExitCode.Should().NotBe(0, "a restore never writes over a data directory");
            again.Error.Should().Contain("is not empty");
            foreach (var node in restored)
            {
                await node.WaitUntilServingAsync(TimeSpan.FromSeconds(30));
            }
            var newLeader = await WaitForLeaderAsync(restored);
            foreach (var (key, value) in acknowledged)
            {
                (await LocalCluster.GetAsync(newLeader, key)).GetProperty("value").GetString().Should().Be(value, "acknowledged {0} must survive the backup", key);
            }
            var digest = await FaultRunDigestAsync(newLeader);
            digest.Digest.Should().Be(source.Digest, "the restored state is the backed-up state");
            var oldMembers = await MembersAsync(leader);
            var newMembers = await MembersAsync(newLeader);
            newMembers.GetProperty("clusterId").GetString().Should().NotBe(oldMembers.GetProperty("clusterId").GetString());
        }
        finally
        {
            foreach (var node in restored)
            {
                await node.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_survivor_of_a_lost_majority_restarts_as_a_new_single_member_cluster_with_every_acknowledged_key()
    {
        await using var cluster = await LocalCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        for (var i = 1; i <= 20; i++)
        {
            using var response = await LocalCluster.SetInSessionAsync(leader, $"k{i}", $"v{i}", "dr-test", (ulong)i);
            response.StatusCode.Should().Be(HttpStatusCode.OK);
        }
        var divergence = await Testing.Faults.FaultRun.ConvergeAsync(cluster, TimeSpan.FromSeconds(20));
        divergence.Should().BeEmpty();
        var survivor = cluster.Nodes.First(n => n != leader);
        var before = await MembersAsync(survivor);
        foreach (var lost in cluster.Nodes.Where(n => n != survivor).ToList())
        {
            await lost.KillAsync(); // the majority is gone for good
        }
        await survivor.KillAsync();

        var forced = await cluster.RestartWithArgumentsAsync(survivor, ["--force-new-cluster", "true"]);

        (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20), among: [forced])).Should().Be(forced);
        forced.Tail(50).Should().Contain("FORCED A NEW CLUSTER");
        var members = await MembersAsync(forced);
        members.GetProperty("members").EnumerateArray().Select(m => m.GetProperty("id").GetString()).Should().Equal(survivor.NodeId);
        members.GetProperty("clusterId").GetString().Should().NotBe(before.GetProperty("clusterId").GetString());
        for (var i = 1; i <= 20; i++)
        {
            (await LocalCluster.GetAsync(forced, $"k{i}")).GetProperty("value").GetString().Should().Be($"v{i}");
        }
        using (var write = await LocalCluster.SetInSessionAsync(forced, "after", "1", "dr-test-2", 1))
        {
            write.StatusCode.Should().Be(HttpStatusCode.OK, "the new cluster of one takes writes");
        }
    }

    private static async Task<ServerProcess> WaitForLeaderAsync(IReadOnlyList<ServerProcess> nodes)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (true)
        {
            foreach (var node in nodes)
            {
                var status = await node.StatusAsync();
                if (status.GetProperty("role").GetString() == "Leader")
                {
                    return node;
                }
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("the restored cluster elected no leader: " + string.Join(" | ", nodes.Select(n => n.Tail(5))));
            }
            await Task.Delay(100);
        }
    }

    private static async Task<(ulong Applied, string? Digest)> FaultRunDigestAsync(ServerProcess node)
    {
        var status = await node.StatusAsync();
        return (status.GetProperty("applied").GetUInt64(), status.GetProperty("digest").GetString());
    }

    private static async Task<JsonElement> MembersAsync(ServerProcess node)
    {
        using var response = await node.Client.GetAsync(new Uri("/cluster/members", UriKind.Relative));
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }
}
