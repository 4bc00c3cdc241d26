using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using RaftKv.RaftCore;
using RaftKv.Testing.Faults;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;
using Proto = RaftKv.Transport.Protos;

namespace RaftKv.Cluster.Tests;

/// <summary>
/// Without TLS, a process speaks the peer protocol to a node and tries to take it over (an AppendEntries with a much
/// higher term, an InstallSnapshot of a forged state, a forwarded write): as a member's id with a data directory the
/// cluster does not know, as a node of another cluster, and as a non-member of this cluster. The node's term, leader and
/// data must be unchanged, also after a restart. And the other side of the membership rule: a member that lags behind the
/// change which added the leader still hears that leader, because a member it knows vouches for it.
/// </summary>
public sealed class PeerSecurityTests(ITestOutputHelper output)
{
    private const ulong ForgedTerm = 1_000;

    [Fact]
    public async Task Without_tls_a_forged_member_another_cluster_or_a_non_member_cannot_raise_a_nodes_term_store_a_snapshot_or_forward_a_write()
    {
        await using var cluster = await LocalCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        using (var written = await LocalCluster.SetInSessionAsync(leader, "k", "v", "security", 1))
        {
            written.EnsureSuccessStatusCode();
        }
        (await FaultRun.ConvergeAsync(cluster, TimeSpan.FromSeconds(20))).Should().BeEmpty();
        var target = cluster.Nodes.First(n => n != leader);
        var members = await target.Client.GetFromJsonAsync<JsonElement>(new Uri("/cluster/members", UriKind.Relative));
        var clusterId = members.GetProperty("clusterId").GetString()!;
        var targetId = ulong.Parse(target.NodeId[1..], CultureInfo.InvariantCulture);
        var before = await target.StatusAsync();

        using var channel = GrpcChannel.ForAddress($"http://127.0.0.1:{target.PeerPort}");
        var client = new Proto.RaftPeer.RaftPeerClient(channel);
        var refusals = new List<string>();
        // The leader's id: the target has surely heard from the leader (it holds the leader's entries), so it knows the
        // leader's data directory. A follower may not have reached it yet: a node takes the first data directory it hears
        // a member speak from (trust on first use), and the other follower's stream may still be waiting to reconnect.
        var member = ulong.Parse(leader.NodeId[1..], CultureInfo.InvariantCulture);
        foreach (var (sender, ofCluster) in new[] { (member, clusterId), (9UL, "0123456789abcdef"), (9UL, clusterId) })
        {
            // A member's id with a data directory the cluster does not know; a node of another cluster; a node of this
            // cluster that is not a member (the target asks its members, and none names n9).
            var headers = Headers(ofCluster, sender);
            refusals.Add(await RefusedAsync("AppendEntries", async () =>
            {
                using var stream = client.Stream(headers);
                var batch = new Proto.MessageBatch();
                batch.Messages.Add(new Proto.PeerMessage
                {
                    From = sender,
                    To = targetId,
                    Term = ForgedTerm,
                    AppendEntries = new Proto.AppendEntries { PrevLogIndex = 0, PrevLogTerm = 0, LeaderCommit = 1 },
                });
                await stream.RequestStream.WriteAsync(batch);
                await stream.RequestStream.CompleteAsync();
                await stream.ResponseAsync;
            }));
            refusals.Add(await RefusedAsync("InstallSnapshot", async () =>
            {
                using var stream = client.InstallSnapshot(headers);
                var forgedConfig = ClusterConfig.Create([new NodeId(sender)]).Encode();
                await stream.RequestStream.WriteAsync(new Proto.SnapshotChunk
                {
                    Message = new Proto.PeerMessage
                    {
                        From = sender,
                        To = targetId,
                        Term = ForgedTerm,
                        InstallSnapshot = new Proto.InstallSnapshot
                        {
                            Snapshot = new Proto.SnapshotMetadata { Index = 10_000, Term = ForgedTerm, Config = ByteString.CopyFrom(forgedConfig) },
                        },
                    },
                    Data = ByteString.CopyFromUtf8("forged state"),
                    Last = true,
                });
                await stream.RequestStream.CompleteAsync();
                await stream.ResponseAsync;
            }));
            refusals.Add(await RefusedAsync("Forward", async () =>
                await client.ForwardAsync(new Proto.ForwardRequest
                {
                    From = sender,
                    Kind = Proto.ForwardKind.Write,
                    Command = ByteString.CopyFromUtf8("""{"type":"SET","key":"k","value":"forged"}"""),
                }, headers)));
        }
        foreach (var refusal in refusals)
        {
            output.WriteLine(refusal);
        }

        await Task.Delay(500);
        await AssertUntouchedAsync(cluster, target, before);
        var snapshots = Path.Combine(target.DataDirectory, "snapshots");
        (Directory.Exists(snapshots) ? Directory.GetFiles(snapshots) : []).Should().NotContain(f => f.Contains("00000000000000010000-", StringComparison.Ordinal),
            "no forged snapshot reached the store");

        // And after a restart, which loads the newest snapshot: still the cluster's own state.
        await target.KillAsync();
        var restarted = await cluster.RestartAsync(target);
        await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        await AssertUntouchedAsync(cluster, restarted, before);
    }

    [Fact]
    public async Task A_member_lagging_behind_the_change_that_added_the_leader_hears_that_leader_once_a_member_vouches_for_it()
    {
        await using var cluster = await LocalCluster.StartAsync(3, spares: 1);
        try
        {
            var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
            // The lagging member is down while n4 joins and takes the lead: its configuration will not name n4.
            var lagging = cluster.Nodes.First(n => n != leader);
            await lagging.KillAsync();
            var joiner = await cluster.StartSpareAsync(via: leader);
            var (added, addedBody) = await LocalCluster.ClusterRequestAsync(leader, HttpMethod.Post, "/cluster/members", new
            {
                id = joiner.NodeId,
                peerUrl = $"http://{joiner.Host}:{joiner.PeerPort}",
                clientUrl = joiner.BaseAddress.ToString(),
                learner = false,
            });
            added.Should().Be(System.Net.HttpStatusCode.Created, addedBody.ToString());
            for (var i = 0; i < 20; i++)
            {
                using var written = await LocalCluster.SetInSessionAsync(leader, "k" + i.ToString(CultureInfo.InvariantCulture), "v", "lagging", (ulong)i + 1);
                written.EnsureSuccessStatusCode();
            }
            var (moved, movedBody) = await LocalCluster.ClusterRequestAsync(leader, HttpMethod.Post, "/cluster/leader", new { to = joiner.NodeId });
            moved.Should().Be(System.Net.HttpStatusCode.OK, movedBody.ToString());
            var live = cluster.Nodes.Where(n => n != lagging).ToList();
            var handedOver = System.Diagnostics.Stopwatch.StartNew();
            while ((await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20), live)).NodeId != joiner.NodeId)
            {
                handedOver.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(20), "the leadership goes to {0}", joiner.NodeId);
                await Task.Delay(100);
            }

            var restarted = await cluster.RestartAsync(lagging);
            // One more write after the new leader's no-op, so that the state digests are taken at the last index.
            using (var last = await LocalCluster.SetInSessionAsync(joiner, "k-last", "v", "lagging", 21))
            {
                last.EnsureSuccessStatusCode();
            }

            (await FaultRun.ConvergeAsync(cluster, TimeSpan.FromSeconds(30))).Should().BeEmpty("the lagging member caught up from n4: {0}", restarted.Tail(40));
            (await LocalCluster.GetAsync(restarted, "k19", stale: true)).GetProperty("value").GetString().Should().Be("v");
            var log = await File.ReadAllTextAsync(restarted.LogPath);
            output.WriteLine(string.Join('\n', log.Split('\n').Where(l => l.Contains(joiner.NodeId, StringComparison.Ordinal)).Take(6)));
            log.Should().Contain($"{joiner.NodeId} is heard although not in this node's configuration", "a member named n4 to the lagging node");
        }
        catch (Exception) when (DumpLogs(cluster))
        {
            throw;
        }
    }

    /// <summary>Writes every node's log tail to the test output (for a failure); returns false so that the exception goes on.</summary>
    private bool DumpLogs(LocalCluster cluster)
    {
        foreach (var node in cluster.Nodes)
        {
            output.WriteLine($"--- {node.NodeId}\n{node.Tail(60)}");
        }
        return false;
    }

    private static Metadata Headers(string clusterId, ulong sender) => new()
    {
        { "raftkv-cluster", clusterId },
        { "raftkv-incarnation", "00000000deadbeef" },
        { "raftkv-from", "n" + sender.ToString(CultureInfo.InvariantCulture) },
    };

    private static async Task<string> RefusedAsync(string what, Func<Task> attempt)
    {
        try
        {
            await attempt();
        }
        catch (RpcException refused)
        {
            return $"{what}: {refused.StatusCode}: {refused.Status.Detail}";
        }
        throw new Xunit.Sdk.XunitException($"{what} from a non-member was not refused");
    }

    private static async Task AssertUntouchedAsync(LocalCluster cluster, ServerProcess target, JsonElement before)
    {
        var status = await target.StatusAsync();
        status.GetProperty("term").GetUInt64().Should().BeLessThan(ForgedTerm, "a non-member's term is never taken up");
        status.GetProperty("term").GetUInt64().Should().BeGreaterThanOrEqualTo(before.GetProperty("term").GetUInt64());
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        leader.NodeId.Should().NotBe("n9");
        (await LocalCluster.GetAsync(target, "k", stale: true)).GetProperty("value").GetString().Should().Be("v");
        (await LocalCluster.GetAsync(leader, "k")).GetProperty("value").GetString().Should().Be("v");
    }
}
