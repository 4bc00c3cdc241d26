using System.Diagnostics;
using System.Text.Json;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cluster.Tests;

/// <summary>
/// A node learns where another member serves clients (its client URL, which /cluster/members and the dashboard show) from
/// the headers of that member's Raft stream to it. A follower has nothing to send another follower, so its stream to a
/// follower that went away must be opened again without waiting for a message, or the restarted follower never hears the
/// URL and its dashboard shows a healthy member down.
/// </summary>
public sealed class PeerClientUrlTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_restarted_follower_learns_the_other_followers_client_url_though_the_two_never_exchange_a_message()
    {
        await using var cluster = await LocalCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        var followers = cluster.Nodes.Where(n => n != leader).ToList();
        var (restarting, other) = (followers[0], followers[1]);
        var term = (await leader.StatusAsync()).GetProperty("term").GetUInt64();

        await restarting.KillAsync();
        await Task.Delay(500); // the other follower's stream to it breaks while the other has nothing to send
        // A 20 s election timeout: the restarted node does not campaign within the test, so no vote request draws an answer
        // from the other follower; only a reopened stream can bring the URL.
        var restarted = await cluster.RestartWithArgumentsAsync(restarting, ["--election-timeout-ticks", "200"]);

        var clock = Stopwatch.StartNew();
        string? seen = null;
        while (seen is null && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(200);
            seen = ClientUrlOf(await MembersAsync(restarted), other.NodeId);
        }
        output.WriteLine($"{restarted.NodeId} learned {other.NodeId}'s client URL after {clock.ElapsedMilliseconds} ms: {seen ?? "(never)"}");

        seen.Should().Be(other.BaseAddress.ToString(), $"{other.NodeId} reopens its stream to {restarted.NodeId}, whose headers carry the URL");
        // No election took place: once the leader's own stream reaches the restarted node, it names the same leader in the
        // same term as before the kill.
        var status = await restarted.StatusAsync();
        for (var i = 0; i < 50 && !status.TryGetProperty("leader", out _); i++)
        {
            await Task.Delay(200);
            status = await restarted.StatusAsync();
        }
        status.GetProperty("leader").GetString().Should().Be(leader.NodeId);
        status.GetProperty("term").GetUInt64().Should().Be(term);
    }

    private static async Task<JsonElement> MembersAsync(ServerProcess node)
    {
        using var response = await node.Client.GetAsync(new Uri("/cluster/members", UriKind.Relative));
        response.EnsureSuccessStatusCode();
        return JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
    }

    private static string? ClientUrlOf(JsonElement members, string nodeId) =>
        members.GetProperty("members").EnumerateArray().Where(m => m.GetProperty("id").GetString() == nodeId)
            .Select(m => m.TryGetProperty("clientUrl", out var url) && url.ValueKind == JsonValueKind.String ? url.GetString() : null).FirstOrDefault();
}
