using System.Diagnostics;
using System.Globalization;
using System.Text;
using RaftKv.Client;
using RaftKv.Testing.Linearizability;
using RaftKv.Testing.Processes;

namespace RaftKv.Testing.Faults;

/// <summary>One run: a cluster, a workload, a nemesis schedule.</summary>
public sealed record FaultRunOptions
{
    public required int Nodes { get; init; }

    /// <summary>Faults in order; when empty, faults are drawn at random until <see cref="Duration"/> is spent.</summary>
    public IReadOnlyList<Fault> Schedule { get; init; } = [];

    /// <summary>For a random schedule: how long to keep injecting.</summary>
    public TimeSpan Duration { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>How long each fault is held before it is undone.</summary>
    public TimeSpan Hold { get; init; } = TimeSpan.FromSeconds(4);

    /// <summary>Healthy time after each fault, and before the first.</summary>
    public TimeSpan Recovery { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>Run the nodes in a network lab (needed for partitions).</summary>
    public bool Partitions { get; init; }

    /// <summary>Run with TLS on both ports and client tokens (loopback only): security is tested under faults too.</summary>
    public bool Secure { get; init; }

    /// <summary>Slots for nodes that join during the run (membership faults): n{Nodes+1}, …; the clients know them from the start.</summary>
    public int Spares { get; init; }

    public int Clients { get; init; } = 6;

    public int Keys { get; init; } = 4;

    public int Seed { get; init; } = 1;

    /// <summary>The percentage of the workload's operations that are transactions on pairs of keys (0: none); needs an even <see cref="Keys"/>.</summary>
    public int Transactions { get; init; }

    /// <summary>Watchers of every workload key through the run, each starting on another node; their streams are checked against the history (0: none).</summary>
    public int Watchers { get; init; } = 3;

    /// <summary>Extra server arguments (for example smaller snapshot thresholds, so that restarts catch up by snapshot).</summary>
    public IReadOnlyList<string> ServerArguments { get; init; } = ["--snapshot-threshold-entries", "1000", "--snapshot-keep-entries", "100"];
}

/// <summary>What a run saw: the history and its verdict, the faults, and every problem found after healing.</summary>
public sealed class FaultRunResult
{
    public required FaultRunOptions Options { get; init; }

    public required IReadOnlyList<Operation> History { get; init; }

    public required WorkloadCounts Counts { get; init; }

    public required IReadOnlyList<FaultReport> Faults { get; init; }

    /// <summary>Each watcher's streams opened (1 + its reconnects) and changes received up to the end marker.</summary>
    public IReadOnlyList<(int Streams, int Changes)> Watchers { get; init; } = [];

    public required CheckResult Check { get; init; }

    /// <summary>Lost acknowledged writes, diverged nodes, session anomalies. Empty when the run is clean.</summary>
    public required IReadOnlyList<string> Problems { get; init; }

    public required TimeSpan Elapsed { get; init; }

    public required TimeSpan CheckTime { get; init; }

    public bool Passed => Check.Linearizable && Problems.Count == 0;

    public override string ToString()
    {
        var text = new StringBuilder()
            .AppendLine(CultureInfo.InvariantCulture, $"{Options.Nodes} nodes, seed {Options.Seed}, {Elapsed.TotalSeconds:F0}s: {History.Count:N0} operations ({Counts})")
            .AppendLine("faults:");
        foreach (var fault in Faults)
        {
            text.AppendLine("  " + fault);
        }
        if (Watchers.Count > 0)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"watchers: {string.Join(", ", Watchers.Select(w => $"{w.Changes:N0} changes over {w.Streams} streams"))}");
        }
        text.AppendLine(CultureInfo.InvariantCulture, $"check ({CheckTime.TotalMilliseconds:F0} ms): {Check.Report.TrimEnd()}");
        foreach (var problem in Problems)
        {
            text.AppendLine("PROBLEM: " + problem);
        }
        return text.ToString();
    }
}

/// <summary>
/// A Jepsen-style run on real server processes: start a cluster (in a network lab when partitions are wanted), run the
/// workload while the nemesis injects faults, heal everything, wait until every node holds the same state, read every
/// key, then check the history for linearizability and the final state for lost acknowledged writes.
/// </summary>
public static class FaultRun
{
    public static async Task<FaultRunResult> RunAsync(FaultRunOptions options, Action<string> log, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(log);
        var clock = Stopwatch.StartNew();
        var lab = options.Partitions ? NetworkLab.Create(options.Nodes + options.Spares) : null;
        await using var cluster = await LocalCluster.StartAsync(options.Nodes, options.ServerArguments, lab, spares: options.Spares, secure: options.Secure)
            .ConfigureAwait(false);
        await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20)).ConfigureAwait(false);
        log($"{options.Nodes} nodes serving{(lab is null ? " on loopback" : $" in network lab {lab.Bridge}")} after {clock.Elapsed.TotalSeconds:F1}s");

        IReadOnlyList<Uri> endpoints = [.. cluster.Endpoints, .. cluster.SpareEndpoints];
        var workload = new Workload(endpoints, cluster.CreateClientHandler,
            options.Clients, options.Keys, options.Seed, cluster.Secured?.Token, options.Transactions);
        using var probeHandler = cluster.CreateClientHandler();
        using var probe = new RaftKvClient(new RaftKvClientOptions { Endpoints = endpoints, Token = cluster.Secured?.Token }, probeHandler);
        // The watchers start after every write so far (none to the workload's keys), so that replaying what they receive
        // gives the final state.
        var startRevision = (await probe.GetAsync(WatchRecorder.EndMarker, Consistency.Linearizable, cancellationToken).ConfigureAwait(false)).Index + 1;
        await using var watchers = WatchRecorder.Start(endpoints, cluster.CreateClientHandler, cluster.Secured?.Token, options.Watchers, startRevision);
        var nemesis = new Nemesis(cluster, options.Seed, log);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var clients = workload.RunAsync(stop.Token);
        Exception? clientFailure = null;
        try
        {
            await Task.Delay(options.Recovery, cancellationToken).ConfigureAwait(false);
            var schedule = Stopwatch.StartNew();
            var index = 0;
            while (options.Schedule.Count > 0 ? index < options.Schedule.Count : schedule.Elapsed < options.Duration)
            {
                var fault = options.Schedule.Count > 0 ? options.Schedule[index] : nemesis.PickFault();
                index++;
                await nemesis.InjectAsync(fault, options.Hold, cancellationToken).ConfigureAwait(false);
                await Task.Delay(options.Recovery, cancellationToken).ConfigureAwait(false);
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            try
            {
                await clients.ConfigureAwait(false);
            }
            catch (Exception error) when (error is not OperationCanceledException)
            {
                clientFailure = error; // reported as a problem below, after healing, without hiding a nemesis failure
            }
            await nemesis.HealAllAsync().ConfigureAwait(false);
        }
        log($"workload stopped after {clock.Elapsed.TotalSeconds:F1}s: {workload.History.Count:N0} operations ({workload.Counts})");

        var problems = new List<string>(nemesis.UnexpectedExits);
        if (clientFailure is not null)
        {
            problems.Add("a client failed: " + clientFailure);
        }
        problems.AddRange(await ConvergeAsync(cluster, TimeSpan.FromSeconds(60)).ConfigureAwait(false));
        var final = await workload.ReadEverythingAsync().ConfigureAwait(false);
        problems.AddRange(workload.LostWrites(final));
        lock (workload.Counts.Anomalies)
        {
            problems.AddRange(workload.Counts.Anomalies);
        }
        var history = workload.History.Operations;
        IReadOnlyList<(int, int)> watched = [];
        if (options.Watchers > 0)
        {
            // The end marker: the last write, which every watcher must reach; then each stream is held to the history.
            var end = (await probe.SetAsync(WatchRecorder.EndMarker, "end", cancellationToken).ConfigureAwait(false)).Index;
            problems.AddRange(await watchers.StopAtAsync(end, TimeSpan.FromSeconds(60)).ConfigureAwait(false));
            problems.AddRange(watchers.Check(history, final.ToDictionary(f => f.Key, f => f.Value.Found ? f.Value.Value : null), end));
            watched = [.. watchers.Watchers.Select(w => (w.Streams, w.Changes.Count(c => c.Revision <= end)))];
            log($"watchers checked after {clock.Elapsed.TotalSeconds:F1}s: {string.Join(", ", watched.Select(w => $"{w.Item2} changes over {w.Item1} streams"))}");
        }
        var checking = Stopwatch.StartNew();
        var check = LinearizabilityChecker.Check(history);
        return new FaultRunResult
        {
            Options = options,
            History = history,
            Counts = workload.Counts,
            Faults = nemesis.Reports,
            Watchers = watched,
            Check = check,
            Problems = problems,
            Elapsed = clock.Elapsed,
            CheckTime = checking.Elapsed,
        };
    }

    /// <summary>
    /// Waits until every node has applied the same index and holds the same state digest; returns what still differs
    /// when time runs out.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ConvergeAsync(LocalCluster cluster, TimeSpan within)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        var clock = Stopwatch.StartNew();
        var last = new List<string>();
        while (true)
        {
            last.Clear();
            var states = new List<(string Node, ulong Applied, ulong Commit, string? Digest, ulong DigestIndex)>();
            foreach (var node in cluster.Nodes)
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                try
                {
                    var status = await node.StatusAsync(timeout.Token).ConfigureAwait(false);
                    states.Add((node.NodeId, status.GetProperty("applied").GetUInt64(), status.GetProperty("commit").GetUInt64(),
                        status.GetProperty("digest").GetString(), status.GetProperty("digestIndex").GetUInt64()));
                }
                catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
                {
                    last.Add($"{node.NodeId} does not answer /status: {e.Message}");
                }
            }
            // One applied index on every node, equal to the highest commit index, and the digest taken at that index.
            if (last.Count == 0 && states.Select(s => (s.Applied, s.Digest, s.DigestIndex)).Distinct().Count() == 1
                && states[0].Applied == states.Max(s => s.Commit) && states[0].DigestIndex == states[0].Applied)
            {
                return [];
            }
            if (last.Count == 0)
            {
                last.Add("nodes differ: " + string.Join(", ", states.Select(s => $"{s.Node} applied {s.Applied} commit {s.Commit} digest {s.Digest}@{s.DigestIndex}")));
            }
            if (clock.Elapsed > within)
            {
                return [.. last.Select(l => $"not converged after {within.TotalSeconds:F0}s: {l}")];
            }
            await Task.Delay(200).ConfigureAwait(false);
        }
    }
}
