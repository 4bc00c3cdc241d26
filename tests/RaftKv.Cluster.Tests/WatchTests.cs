using System.Collections.Concurrent;
using System.Diagnostics;
using RaftKv.Client;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cluster.Tests;

/// <summary>
/// A watch on real processes: the node serving it is killed mid-stream, and the .NET client resumes on another node
/// after the last change it received (Last-Event-ID): every change arrives once, in order, none missed.
/// </summary>
public sealed class WatchTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_watcher_whose_node_is_killed_mid_stream_gets_exactly_the_changes_it_missed_from_another_node()
    {
        await using var cluster = await LocalCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        var serving = cluster.Nodes.First(n => n != leader);
        // The watcher asks the serving node first; the others are where it resumes.
        var endpoints = new[] { serving }.Concat(cluster.Nodes.Where(n => n != serving)).Select(n => n.BaseAddress).ToList();
        using var watcher = new RaftKvClient(new RaftKvClientOptions { Endpoints = endpoints });
        using var writer = new RaftKvClient(new RaftKvClientOptions { Endpoints = [leader.BaseAddress] });
        var received = new ConcurrentQueue<WatchChange>();
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var first = await writer.SetAsync("before-watch", "x");
        var watching = Task.Run(async () =>
        {
            await foreach (var change in watcher.WatchAsync("w/", isPrefix: true, fromRevision: first.Index + 1, previousValues: true, stop.Token))
            {
                received.Enqueue(change);
            }
        });

        for (var i = 0; i < 10; i++)
        {
            await writer.SetAsync($"w/{i:D2}", "v" + i);
        }
        await WaitForAsync(() => received.Count >= 10, "the first ten changes");
        await serving.KillAsync();
        var killedAfter = received.Count;
        for (var i = 10; i < 30; i++)
        {
            await writer.SetAsync($"w/{i:D2}", "v" + i);
        }
        await WaitForAsync(() => received.Count >= 30, "the changes made while the serving node was dead");
        await Task.Delay(500); // nothing more may come
        await stop.CancelAsync();
        try
        {
            await watching;
        }
        catch (OperationCanceledException)
        {
            // Stopped.
        }

        var changes = received.ToList();
        output.WriteLine($"{killedAfter} changes before the kill, {changes.Count - killedAfter} after, resumed after {changes[killedAfter - 1].Id}");
        changes.Select(c => c.Key).Should().Equal(Enumerable.Range(0, 30).Select(i => $"w/{i:D2}"), "every change once, in order");
        changes.Select(c => c.Revision).Should().BeInAscendingOrder().And.OnlyHaveUniqueItems();
        changes.Should().OnlyContain(c => c.Type == "PUT" && c.PrevValue == null);
    }

    private static async Task WaitForAsync(Func<bool> done, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!done())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(45))
            {
                throw new TimeoutException("the watcher did not receive " + what + " within 45 s");
            }
            await Task.Delay(50);
        }
    }
}
