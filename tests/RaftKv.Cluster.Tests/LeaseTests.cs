using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cluster.Tests;

/// <summary>
/// Leases on real processes: one not kept alive expires by the leader's clock and every node deletes its keys; one whose
/// leader is killed mid-life outlives the dead leader's countdown, because the new leader restarts it at its full TTL.
/// The figures (when each thing happened, from the test's clock) are printed; the assertions are about order, with the
/// margins the protocol gives (a lease never ends before its TTL has passed since the last point its holder was known alive).
/// </summary>
public sealed class LeaseTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_lease_not_kept_alive_expires_and_every_node_deletes_its_keys_but_no_other()
    {
        await using var cluster = await LocalCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        var follower = cluster.Nodes.First(n => n != leader);
        var clock = Stopwatch.StartNew();

        var asked = clock.Elapsed; // the grant cannot be applied, so its countdown cannot start, before it is asked for
        var lease = await GrantAsync(follower, ttl: 2);
        (await PutAsync(follower, "leased/a", "1", lease)).Should().Be(HttpStatusCode.OK);
        (await PutAsync(leader, "leased/b", "2", lease)).Should().Be(HttpStatusCode.OK);
        (await PutAsync(leader, "plain", "3", lease: null)).Should().Be(HttpStatusCode.OK);
        var info = await InfoAsync(follower, lease);
        info.status.Should().Be(HttpStatusCode.OK, "a follower asks the leader (forwarded): {0}", info.body);
        info.body.GetProperty("keys").EnumerateArray().Select(k => k.GetString()).Should().Equal("leased/a", "leased/b");

        var gone = await WaitForAsync(async () => await GetStatusAsync(follower, "leased/a") == HttpStatusCode.NotFound, clock, TimeSpan.FromSeconds(20));
        output.WriteLine($"granted (asked) at {asked.TotalSeconds:F2} s; its keys gone at {gone.TotalSeconds:F2} s: {(gone - asked).TotalSeconds:F2} s for a 2 s TTL");
        (gone - asked).Should().BeGreaterThanOrEqualTo(TimeSpan.FromSeconds(2), "a lease never ends before its TTL");

        foreach (var node in cluster.Nodes)
        {
            // Stale reads: each node's own state, once it has applied the expiry.
            await WaitForAsync(async () => await GetStatusAsync(node, "leased/b", stale: true) == HttpStatusCode.NotFound, clock, TimeSpan.FromSeconds(10));
            (await GetStatusAsync(node, "plain", stale: true)).Should().Be(HttpStatusCode.OK, "a key written without the lease stays on {0}", node.NodeId);
            (await InfoAsync(node, lease)).status.Should().Be(HttpStatusCode.NotFound);
        }
        (await PutAsync(leader, "late", "4", lease)).Should().Be(HttpStatusCode.NotFound, "an expired lease takes no more keys");
    }

    [Fact]
    public async Task A_leader_killed_during_a_leases_life_does_not_make_it_expire_early()
    {
        const int Ttl = 8;
        await using var cluster = await LocalCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        var survivor = cluster.Nodes.First(n => n != leader);
        var clock = Stopwatch.StartNew();

        var lease = await GrantAsync(leader, Ttl);
        (await PutAsync(leader, "held", "by-me", lease)).Should().Be(HttpStatusCode.OK);
        (await KeepAliveAsync(leader, lease)).Should().Be(HttpStatusCode.OK);
        var keptAlive = clock.Elapsed; // the last keepalive was answered by then: the old leader's countdown ends at most TTL later
        await Task.Delay(TimeSpan.FromSeconds(3));
        var killed = clock.Elapsed;
        await leader.KillAsync();
        var next = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        var elected = clock.Elapsed;

        // Past the dead leader's countdown (and its check period) but before the new leader's can end, whenever it started
        // (after the kill): a new leader that kept the old countdown would have expired the lease here.
        var checkAt = keptAlive + TimeSpan.FromSeconds(Ttl + 1.5);
        if (clock.Elapsed < checkAt)
        {
            await Task.Delay(checkAt - clock.Elapsed);
        }
        var checkedAt = clock.Elapsed;
        var present = await GetStatusAsync(survivor, "held");
        var answered = clock.Elapsed;
        output.WriteLine($"last keepalive answered at {keptAlive.TotalSeconds:F2} s, leader {leader.NodeId} killed at {killed.TotalSeconds:F2} s, " +
            $"{next.NodeId} leads at {elected.TotalSeconds:F2} s; the key read at {checkedAt.TotalSeconds:F2}-{answered.TotalSeconds:F2} s: {present}");
        answered.Should().BeLessThan(killed + TimeSpan.FromSeconds(Ttl), "the check must come before the new leader's countdown can end, or it proves nothing");
        present.Should().Be(HttpStatusCode.OK, "the new leader restarts the lease's countdown at its full TTL");

        var gone = await WaitForAsync(async () => await GetStatusAsync(survivor, "held") == HttpStatusCode.NotFound, clock, TimeSpan.FromSeconds(Ttl + 15));
        output.WriteLine($"the key gone at {gone.TotalSeconds:F2} s: {(gone - killed).TotalSeconds:F2} s after the kill, {(gone - elected).TotalSeconds:F2} s after the new leader was seen");
        (gone - killed).Should().BeGreaterThanOrEqualTo(TimeSpan.FromSeconds(Ttl), "the new leader's countdown started after the kill");
    }

    private static async Task<ulong> GrantAsync(ServerProcess node, int ttl)
    {
        using var response = await node.Client.PostAsync(new Uri("/leases", UriKind.Relative), JsonContent.Create(new { ttl }));
        var body = await response.Content.ReadFromJsonAsync<JsonElement>();
        response.StatusCode.Should().Be(HttpStatusCode.OK, "the grant: {0}", body);
        return body.GetProperty("id").GetUInt64();
    }

    private static async Task<HttpStatusCode> PutAsync(ServerProcess node, string key, string value, ulong? lease)
    {
        using var response = await node.Client.PostAsync(new Uri("/command", UriKind.Relative), JsonContent.Create(new { type = "SET", key, value, lease }));
        return response.StatusCode;
    }

    private static async Task<HttpStatusCode> KeepAliveAsync(ServerProcess node, ulong lease)
    {
        using var response = await node.Client.PostAsync(new Uri($"/leases/{lease}/keepalive", UriKind.Relative), null);
        return response.StatusCode;
    }

    private static async Task<(HttpStatusCode status, JsonElement body)> InfoAsync(ServerProcess node, ulong lease)
    {
        using var response = await node.Client.GetAsync(new Uri($"/leases/{lease}", UriKind.Relative));
        return (response.StatusCode, await response.Content.ReadFromJsonAsync<JsonElement>());
    }

    private static async Task<HttpStatusCode> GetStatusAsync(ServerProcess node, string key, bool stale = false)
    {
        using var response = await node.Client.GetAsync(new Uri($"/kv/{key}{(stale ? "?consistency=stale" : "")}", UriKind.Relative));
        return response.StatusCode;
    }

    /// <summary>Polls every 50 ms until <paramref name="done"/>; the test clock's time then. Throws after <paramref name="within"/>.</summary>
    private static async Task<TimeSpan> WaitForAsync(Func<Task<bool>> done, Stopwatch clock, TimeSpan within)
    {
        var until = clock.Elapsed + within;
        while (!await done())
        {
            if (clock.Elapsed > until)
            {
                throw new TimeoutException($"not within {within.TotalSeconds} s");
            }
            await Task.Delay(50);
        }
        return clock.Elapsed;
    }
}
