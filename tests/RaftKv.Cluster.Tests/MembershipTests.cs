using System.Diagnostics;
using System.Net;
using System.Text.Json;
using RaftKv.Testing.Faults;
using RaftKv.Testing.Linearizability;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cluster.Tests;

/// <summary>
/// Membership changes on real server processes, through the HTTP admin API, while clients read, write and
/// compare-and-set: a cluster grows, loses a machine, takes in a replacement under a new id, and sheds its leader; the
/// history must stay linearizable and no acknowledged write may be lost.
/// </summary>
public sealed class MembershipTests(ITestOutputHelper output)
{
    private static readonly string[] SmallSnapshots = ["--snapshot-threshold-entries", "200", "--snapshot-keep-entries", "20"];

    [Fact]
    public async Task A_loaded_cluster_grows_from_three_to_five_replaces_a_killed_node_and_removes_its_leader_with_a_linearizable_history()
    {
        var clock = Stopwatch.StartNew();
        // Three spare slots (n4, n5, n6) for the nodes to come: the clients know every address from the start.
        await using var cluster = await LocalCluster.StartAsync(3, SmallSnapshots, spares: 3);
        await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        var endpoints = cluster.Endpoints.Concat(cluster.SpareEndpoints).ToList();
        var workload = new Workload(endpoints, () => new SocketsHttpHandler(), clients: 6, keys: 4, seed: 21);
        using var stop = new CancellationTokenSource();
        var clients = workload.RunAsync(stop.Token);
        var steps = new List<string>();
        void Log(string step)
        {
            steps.Add($"{clock.Elapsed.TotalSeconds,5:F1}s {step}");
            output.WriteLine(steps[^1]);
        }

        try
        {
            await Task.Delay(1_500);
            // Grow 3 → 5: each new node joins through a member, then is added as a voter once it has caught up.
            foreach (var id in new[] { "n4", "n5" })
            {
                var joiner = await cluster.StartSpareAsync(via: cluster["n1"]);
                joiner.NodeId.Should().Be(id);
                var (status, body) = await AddVoterAsync(cluster["n2"], joiner);
                status.Should().Be(HttpStatusCode.Created, "adding {0}: {1}", id, body);
                Log($"added {id}: {Members(body)}");
            }
            Voters(await MembersAsync(cluster["n1"])).Should().Equal("n1", "n2", "n3", "n4", "n5");

            // A machine dies for good: SIGKILL n2, remove it, and add its replacement under a new id.
            var dead = cluster["n2"];
            await dead.KillAsync();
            await cluster.ForgetAsync(dead);
            var (removed, removedBody) = await LocalCluster.ClusterRequestAsync(cluster["n3"], HttpMethod.Delete, "/cluster/members/n2");
            removed.Should().Be(HttpStatusCode.OK, "removing the dead n2: {0}", removedBody);
            Log($"removed n2 (killed): {Members(removedBody)}");
            var replacement = await cluster.StartSpareAsync(via: cluster["n3"]);
            var (replaced, replacedBody) = await AddVoterAsync(cluster["n4"], replacement);
            replaced.Should().Be(HttpStatusCode.Created, "adding n6: {0}", replacedBody);
            Log($"replaced n2 by n6: {Members(replacedBody)}");

            // Remove the leader itself: it commits its own removal, hands over, and steps down.
            var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
            var other = cluster.Nodes.First(n => n != leader);
            // Under load (a snapshot every 200 entries) the newest voter may still be catching up: give the change 30 s.
            var (removedLeader, leaderBody) = await LocalCluster.ClusterRequestAsync(other, HttpMethod.Delete, $"/cluster/members/{leader.NodeId}", attempts: 120);
            removedLeader.Should().Be(HttpStatusCode.OK, "removing the leader {0}: {1}", leader.NodeId, leaderBody);
            Log($"removed the leader {leader.NodeId}: {Members(leaderBody)}");
            await cluster.ForgetAsync(leader);
            var next = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
            next.NodeId.Should().NotBe(leader.NodeId);
            Log($"new leader {next.NodeId}");
            await Task.Delay(1_500); // load on the new configuration
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await clients;
            }
            catch (OperationCanceledException)
            {
                // Stopped.
            }
        }

        var expected = new[] { "n1", "n3", "n4", "n5", "n6" }.Where(id => cluster.Nodes.Any(n => n.NodeId == id)).ToList();
        expected.Should().HaveCount(4, "one of the five was the removed leader");
        Voters(await MembersAsync(cluster.Nodes[0])).Should().Equal(expected);
        var divergence = await FaultRun.ConvergeAsync(cluster, TimeSpan.FromSeconds(60));
        divergence.Should().BeEmpty();
        var final = await workload.ReadEverythingAsync();
        workload.LostWrites(final).Should().BeEmpty();
        lock (workload.Counts.Anomalies)
        {
            workload.Counts.Anomalies.Should().BeEmpty();
        }
        var check = LinearizabilityChecker.Check(workload.History.Operations);
        output.WriteLine($"{workload.History.Count} operations ({workload.Counts}); {check.Report}");
        check.Linearizable.Should().BeTrue(check.Report);
        workload.Counts.AcknowledgedWrites.Should().BeGreaterThan(50, "the cluster took writes throughout");
    }

    [Fact]
    public async Task A_node_restarted_with_an_empty_data_directory_under_its_old_id_is_refused()
    {
        await using var cluster = await LocalCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        using (var written = await LocalCluster.SetInSessionAsync(leader, "k", "v", "wiped-test", 1))
        {
            written.StatusCode.Should().Be(HttpStatusCode.OK);
        }
        var victim = cluster.Nodes.First(n => n != leader);
        await FaultRun.ConvergeAsync(cluster, TimeSpan.FromSeconds(20));

        await victim.KillAsync();
        Directory.Delete(victim.DataDirectory, recursive: true); // the disk is replaced; the machine keeps its name
        var again = await cluster.RestartWithoutWaitingAsync(victim);
        var exitCode = await again.WaitForExitAsync(TimeSpan.FromSeconds(30));

        exitCode.Should().Be(3, again.Tail());
        var refusal = again.Tail(5);
        output.WriteLine(refusal);
        refusal.Should().Contain($"refuses this node: {victim.NodeId} is known to this cluster with another data directory")
            .And.Contain("must not rejoin under its old id");
        Directory.EnumerateFileSystemEntries(victim.DataDirectory).Should().BeEmpty("a refused node writes nothing");
        var (status, body) = await LocalCluster.ClusterRequestAsync(leader, HttpMethod.Post, "/cluster/leader", attempts: 1);
        status.Should().Be(HttpStatusCode.OK, "the rest of the cluster goes on: {0}", body);
    }

    [Fact]
    public async Task A_node_started_on_another_clusters_data_refuses_to_start()
    {
        await using var first = await LocalCluster.StartAsync(3);
        await using var second = await LocalCluster.StartAsync(1);
        await first.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        await second.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        var victim = first["n3"];
        await victim.KillAsync();

        // n3's data directory belongs to the first cluster; the node is told to join the second one.
        var ports = FreePorts.Take(2);
        await using var wrong = ServerProcess.Start("n3", ports[0], ports[1], victim.DataDirectory,
        [
            "--node-id", "n3", "--join", second["n1"].BaseAddress.ToString(), "--peer", $"http://127.0.0.1:{ports[1]}",
            "--http", $"http://127.0.0.1:{ports[0]}", "--data-dir", victim.DataDirectory,
        ]);
        var exitCode = await wrong.WaitForExitAsync(TimeSpan.FromSeconds(30));

        exitCode.Should().Be(3, wrong.Tail());
        wrong.Tail(5).Should().Contain("holds data of cluster").And.Contain("serves cluster");
    }

    private static Task<(HttpStatusCode Status, JsonElement Body)> AddVoterAsync(ServerProcess via, ServerProcess joiner) =>
        LocalCluster.ClusterRequestAsync(via, HttpMethod.Post, "/cluster/members", new
        {
            id = joiner.NodeId,
            peerUrl = $"http://{joiner.Host}:{joiner.PeerPort}",
            clientUrl = joiner.BaseAddress.ToString(),
            learner = false,
        });

    private static async Task<JsonElement> MembersAsync(ServerProcess node)
    {
        using var response = await node.Client.GetAsync(new Uri("/cluster/members", UriKind.Relative));
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private static List<string> Voters(JsonElement members) =>
        [.. members.GetProperty("members").EnumerateArray().Where(m => m.GetProperty("role").GetString() == "voter").Select(m => m.GetProperty("id").GetString()!)];

    private static string Members(JsonElement body) =>
        body.ValueKind == JsonValueKind.Object && body.TryGetProperty("members", out var members)
            ? string.Join(' ', members.EnumerateArray().Select(m => m.GetProperty("id").GetString() + ":" + m.GetProperty("role").GetString()))
            : body.ToString();
}
