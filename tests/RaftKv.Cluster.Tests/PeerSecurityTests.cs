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
/// cluster does not know, as a node of another cluster, and as a non-member of this cluster whose stream carries a
/// member's messages or who forwards a write. The node's term, leader and data must be unchanged, also after a restart.
/// (A stranger speaking for itself is kept out by TLS: TlsTests.)
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
        var member = targetId == 1 ? 2UL : 1UL;
        foreach (var (sender, ofCluster) in new[] { (member, clusterId), (9UL, "0123456789abcdef") })
        {
            // A member's id with a data directory the cluster does not know; and a node of another cluster.
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
        // A node of this cluster that is not a member (n9): it may not forward requests, and a stream it opens carries its
        // own messages only (here: one claiming to come from a member, with a much higher term, is dropped). Without TLS
        // its own messages are heard, since a lagging member must hear a leader that joined after its configuration;
        // TlsTests shows that with TLS such a stranger gets no connection at all.
        var stranger = Headers(clusterId, 9);
        refusals.Add(await RefusedAsync("Forward from n9", async () =>
            await client.ForwardAsync(new Proto.ForwardRequest
            {
                From = 9,
                Kind = Proto.ForwardKind.Write,
                Command = ByteString.CopyFromUtf8("""{"type":"SET","key":"k","value":"forged"}"""),
            }, stranger)));
        using (var stream = client.Stream(stranger))
        {
            var batch = new Proto.MessageBatch();
            batch.Messages.Add(new Proto.PeerMessage
            {
                From = member,
                To = targetId,
                Term = ForgedTerm,
                AppendEntries = new Proto.AppendEntries { LeaderCommit = 1 },
            });
            await stream.RequestStream.WriteAsync(batch);
            await stream.RequestStream.CompleteAsync();
            await stream.ResponseAsync;
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
