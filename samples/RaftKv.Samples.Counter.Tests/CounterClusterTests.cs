using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Samples.Counter.Tests;

/// <summary>
/// The counter sample as three real processes on loopback: the node runtime hosts an application it was not written for.
/// Every process a test starts is stopped by the test (LocalCluster disposes them by PID).
/// </summary>
public sealed class CounterClusterTests(ITestOutputHelper output)
{
    private static readonly string CounterDll = Paths.Built(Path.Combine("samples", "RaftKv.Samples.Counter"), "RaftKv.Samples.Counter");

    [Fact]
    public async Task Adds_sent_to_every_node_sum_up_the_same_on_every_node()
    {
        await using var cluster = await LocalCluster.StartAsync(3, serverDll: CounterDll);
        await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(15));

        long expected = 0;
        for (var i = 1; i <= 30; i++)
        {
            var node = cluster.Nodes[i % 3]; // followers forward to the leader, over the peer port
            var delta = i % 4 == 0 ? -i : i;
            expected += delta;
            var answer = await AddAsync(node, delta);
            answer.GetProperty("value").GetInt64().Should().Be(expected, "add {0} through {1} is applied once, in order", delta, node.NodeId);
        }

        foreach (var node in cluster.Nodes)
        {
            (await ReadAsync(node)).Should().Be(expected, "a linearizable read on {0} sees every acknowledged add", node.NodeId);
        }
        (await EventuallyAsync(async () => await Task.WhenAll(cluster.Nodes.Select(n => ReadAsync(n, stale: true))), values => values.All(v => v == expected)))
            .Should().OnlyContain(v => v == expected, "every node applies the same log");
        var digests = await Task.WhenAll(cluster.Nodes.Select(async n => (await n.StatusAsync()).GetProperty("digest").GetString()));
        digests.Distinct().Should().ContainSingle("the runtime's /status reports the sample's own digest");
    }

    [Fact]
    public async Task The_counter_survives_the_loss_of_its_leader_and_the_restarted_node_catches_up()
    {
        await using var cluster = await LocalCluster.StartAsync(3, serverDll: CounterDll);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(15));
        for (var i = 0; i < 10; i++)
        {
            await AddAsync(leader, 1);
        }

        await leader.KillAsync();
        var survivors = cluster.Nodes.Where(n => n != leader).ToList();
        var clock = Stopwatch.StartNew();
        var newLeader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(15), survivors);
        output.WriteLine($"{newLeader.NodeId} leads {clock.ElapsedMilliseconds} ms after {leader.NodeId} was killed");
        (await AddAsync(survivors[0], 5)).GetProperty("value").GetInt64().Should().Be(15, "nothing acknowledged was lost");

        var restarted = await cluster.RestartAsync(leader);
        (await EventuallyAsync(() => ReadAsync(restarted, stale: true), value => value == 15)).Should().Be(15);
    }

    [Fact]
    public async Task A_bad_request_is_refused_naming_the_field_and_counts_nothing()
    {
        await using var cluster = await LocalCluster.StartAsync(3, serverDll: CounterDll);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(15));
        await AddAsync(leader, 3);

        using var missing = await leader.Client.PostAsync(new Uri("/counter/add", UriKind.Relative), JsonContent.Create(new { amount = 1 }));
        using var consistency = await leader.Client.GetAsync(new Uri("/counter?consistency=eventual", UriKind.Relative));

        missing.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await missing.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("field").GetString().Should().Be("by");
        consistency.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await ReadAsync(leader)).Should().Be(3);
    }

    private static async Task<JsonElement> AddAsync(ServerProcess node, long by)
    {
        using var response = await node.Client.PostAsync(new Uri("/counter/add", UriKind.Relative), JsonContent.Create(new { by }));
        response.StatusCode.Should().Be(HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return await response.Content.ReadFromJsonAsync<JsonElement>();
    }

    private static async Task<long> ReadAsync(ServerProcess node, bool stale = false)
    {
        using var response = await node.Client.GetAsync(new Uri(stale ? "/counter?consistency=stale" : "/counter", UriKind.Relative));
        response.StatusCode.Should().Be(HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("value").GetInt64();
    }

    /// <summary>Retries a read until <paramref name="done"/> holds or 10 s pass (followers apply a little later); returns the last answer.</summary>
    private static async Task<T> EventuallyAsync<T>(Func<Task<T>> read, Func<T, bool> done)
    {
        var clock = Stopwatch.StartNew();
        var last = await read();
        while (!done(last) && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(50);
            last = await read();
        }
        return last;
    }
}
