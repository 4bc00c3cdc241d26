using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using RaftKv.Client;
using RaftKv.Samples.Coordination;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cluster.Tests;

/// <summary>
/// docs/recipes.md run on real processes: the distributed lock (samples/RaftKv.Samples.Coordination) excludes, hands its
/// fencing token up, and passes on when a holder dies; the leader election keeps its leader through a kill of the
/// cluster's own leader, and observers see every change of leader in order.
/// </summary>
public sealed class CoordinationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Services_taking_the_lock_in_turn_never_hold_it_at_once_and_get_growing_fencing_tokens()
    {
        await using var cluster = await LocalCluster.StartAsync(3);
        await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        var holders = 0;
        var overlaps = 0;
        var tokens = new ConcurrentQueue<(string Owner, ulong Token)>();
        using var writer = Client(cluster);

        async Task WorkAsync(string owner)
        {
            using var client = Client(cluster);
            for (var turn = 0; turn < 4; turn++)
            {
                await using var held = await DistributedLock.AcquireAsync(client, "deploy", owner, ttlSeconds: 5);
                if (Interlocked.Increment(ref holders) != 1)
                {
                    Interlocked.Increment(ref overlaps);
                }
                tokens.Enqueue((owner, held.Revision));
                // A read-modify-write that loses updates unless the lock excludes: read, wait, write one more.
                var count = await client.GetAsync("deployments");
                await Task.Delay(30);
                await client.SetAsync("deployments", ((count.Found ? int.Parse(count.Value!) : 0) + 1).ToString());
                Interlocked.Decrement(ref holders);
            }
        }

        await Task.WhenAll(WorkAsync("a"), WorkAsync("b"), WorkAsync("c")).WaitAsync(TimeSpan.FromSeconds(90));

        output.WriteLine("holders and fencing tokens in turn: " + string.Join(", ", tokens.Select(t => $"{t.Owner}:{t.Token}")));
        overlaps.Should().Be(0);
        (await writer.GetAsync("deployments")).Value.Should().Be("12", "no increment was lost");
        tokens.Select(t => t.Token).Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        (await writer.GetAsync("locks/deploy")).Found.Should().BeFalse("the last holder released it");
    }

    [Fact]
    public async Task A_lock_whose_holder_died_passes_to_a_waiter_once_the_holders_lease_expires()
    {
        await using var cluster = await LocalCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        using var client = Client(cluster);
        var clock = Stopwatch.StartNew();
        // The dead holder: it took the lock under a 3 s lease and never kept it alive (as if killed right after).
        var granted = clock.Elapsed;
        using var grant = await leader.Client.PostAsync(new Uri("/leases", UriKind.Relative), JsonContent.Create(new { ttl = 3 }));
        var lease = (await grant.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetUInt64();
        using var taken = await leader.Client.PostAsync(new Uri("/command", UriKind.Relative),
            JsonContent.Create(new { type = "SET", key = "locks/backup", value = "dead-holder", lease }));
        taken.StatusCode.Should().Be(HttpStatusCode.OK);

        await using var held = await DistributedLock.AcquireAsync(client, "backup", "survivor", ttlSeconds: 5).WaitAsync(TimeSpan.FromSeconds(30));
        var acquired = clock.Elapsed;

        output.WriteLine($"the dead holder's lease granted at {granted.TotalSeconds:F2} s; the waiter got the lock at {acquired.TotalSeconds:F2} s");
        (acquired - granted).Should().BeGreaterThanOrEqualTo(TimeSpan.FromSeconds(3), "the lock passes only when the dead holder's lease has run out");
        (await client.GetAsync("locks/backup")).Value.Should().Be("survivor");
        held.Lost.IsCancellationRequested.Should().BeFalse();
    }

    [Fact]
    public async Task An_elected_leader_keeps_leading_through_a_kill_of_the_clusters_leader_and_observers_see_each_leader_in_turn()
    {
        // The keeper gives up on a lease it could not confirm for a whole TTL: the TTL must outlast an election on a
        // loaded machine (with 4 s, a CI run under load saw the winner's keeper give up during the failover).
        const int Ttl = 8;
        await using var cluster = await LocalCluster.StartAsync(3);
        var raftLeader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        using var observerClient = Client(cluster);
        using var stopObserving = new CancellationTokenSource(TimeSpan.FromSeconds(100));
        var observed = new ConcurrentQueue<string?>();
        var observer = Task.Run(async () =>
        {
            await foreach (var leader in LeaderElection.ObserveAsync(observerClient, "scheduler", stopObserving.Token))
            {
                observed.Enqueue(leader);
            }
        });
        var clients = new[] { "a", "b", "c" }.ToDictionary(name => name, _ => Client(cluster));
        var campaigns = clients.ToDictionary(c => c.Key, c => LeaderElection.CampaignAsync(c.Value, "scheduler", c.Key, Ttl));
        var order = new List<string>();
        try
        {
            var first = await Task.WhenAny(campaigns.Values).WaitAsync(TimeSpan.FromSeconds(20));
            var winner = await first;
            order.Add(winner.Value);
            campaigns.Remove(winner.Value);

            await raftLeader.KillAsync();
            var killedAt = Stopwatch.StartNew();
            await Task.Delay(TimeSpan.FromSeconds(Ttl + 4)); // past the TTL the countdown had when the leader died
            output.WriteLine($"{winner.Value} leads; the cluster's leader {raftLeader.NodeId} killed {killedAt.Elapsed.TotalSeconds:F1} s ago"
                + (winner.Lost.IsCancellationRequested ? $"; but it lost its lease: {(await winner.WhenLost).Detail}" : ""));
            winner.Lost.IsCancellationRequested.Should().BeFalse("its keepalives reach the new leader, which restarted the countdown");
            foreach (var (name, campaign) in campaigns.Where(c => c.Value.IsFaulted))
            {
                output.WriteLine($"{name}'s campaign failed: {campaign.Exception!.InnerException}");
            }
            campaigns.Values.Should().OnlyContain(c => !c.IsCompleted, "nobody else may win while it leads");

            while (campaigns.Count > 0)
            {
                await winner.DisposeAsync(); // resign
                var next = await Task.WhenAny(campaigns.Values).WaitAsync(TimeSpan.FromSeconds(20));
                winner = await next;
                order.Add(winner.Value);
                campaigns.Remove(winner.Value);
            }
            await winner.DisposeAsync();
            await WaitForAsync(() => observed.Count(l => l is not null) >= 3 && observed.Last() is null);
        }
        finally
        {
            await stopObserving.CancelAsync();
            foreach (var client in clients.Values)
            {
                client.Dispose();
            }
        }
        try
        {
            await observer;
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }

        output.WriteLine("won in turn: " + string.Join(", ", order) + "; observed: " + string.Join(", ", observed.Select(l => l ?? "(none)")));
        order.Should().BeEquivalentTo(["a", "b", "c"]);
        observed.Where(l => l is not null).Should().Equal(order, "every leader, once, in order");
    }

    [Fact]
    public void Every_line_of_code_the_recipe_quotes_is_in_the_sample()
    {
        var sample = File.ReadAllLines(Path.Combine(Paths.Repository, "samples", "RaftKv.Samples.Coordination", "Coordination.cs")).Select(l => l.Trim()).ToHashSet();
        var doc = File.ReadAllText(Path.Combine(Paths.Repository, "docs", "recipes.md"));
        var quoted = System.Text.RegularExpressions.Regex.Matches(doc, "```csharp\n(.*?)```", System.Text.RegularExpressions.RegexOptions.Singleline)
            .SelectMany(m => m.Groups[1].Value.Split('\n')).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();

        quoted.Should().HaveCountGreaterThan(20);
        quoted.Should().OnlyContain(line => sample.Contains(line), "docs/recipes.md quotes the sample as it is");
    }

    private static RaftKvClient Client(LocalCluster cluster) => new(new RaftKvClientOptions { Endpoints = cluster.Endpoints });

    private static async Task WaitForAsync(Func<bool> done)
    {
        var clock = Stopwatch.StartNew();
        while (!done())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(20))
            {
                throw new TimeoutException("not within 20 s");
            }
            await Task.Delay(50);
        }
    }
}
