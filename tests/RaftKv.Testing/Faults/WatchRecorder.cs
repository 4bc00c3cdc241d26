using System.Globalization;
using RaftKv.Client;
using RaftKv.Testing.Linearizability;

namespace RaftKv.Testing.Faults;

/// <summary>One change as a watcher received it.</summary>
public sealed record WatchedChange(ulong Revision, string Type, string Key, string? Value)
{
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"r{Revision} {Type} {Key}{(Value is null ? "" : "=" + Value)}");
}

/// <summary>What one watcher received, and how many times its stream was opened (1 + the reconnects).</summary>
public sealed class WatcherLog(int number)
{
    private readonly List<WatchedChange> _changes = [];
    private int _streams;

    public int Number { get; } = number;

    public IReadOnlyList<WatchedChange> Changes
    {
        get
        {
            lock (_changes)
            {
                return [.. _changes];
            }
        }
    }

    /// <summary>Streams opened: the first, then one per reconnect (a node killed, paused or cut off under it).</summary>
    public int Streams => Volatile.Read(ref _streams);

    /// <summary>The watch ended with an exception instead of being stopped (null: it was stopped).</summary>
    public Exception? Failure { get; internal set; }

    internal void Add(WatchedChange change)
    {
        lock (_changes)
        {
            _changes.Add(change);
        }
    }

    internal void Opened() => Interlocked.Increment(ref _streams);

    internal ulong LastRevision
    {
        get
        {
            lock (_changes)
            {
                return _changes.Count == 0 ? 0 : _changes[^1].Revision;
            }
        }
    }
}

/// <summary>
/// Watchers of every workload key through a fault run: each watches the prefix <see cref="Workload.KeyPrefix"/> from one
/// revision with the .NET client (which resumes a broken stream on the next node with Last-Event-ID), starting on a
/// different node, so that kills, pauses and partitions break their streams. At the end, a last write (the end marker)
/// gives the revision every watcher must reach; <see cref="Check"/> then holds each watcher's changes to the committed
/// history: in revision order, the same on every watcher, every acknowledged write at its revision, no change that no
/// client asked for, and replayed, the final state of every key.
/// </summary>
public sealed class WatchRecorder : IAsyncDisposable
{
    /// <summary>The key written after the workload: under the watched prefix, so every watcher must see it last.</summary>
    public const string EndMarker = Workload.KeyPrefix + "-end";

    private readonly CancellationTokenSource _stop = new();
    private readonly List<(WatcherLog Log, Task Task)> _watchers = [];
    private readonly List<IDisposable> _owned = [];

    private WatchRecorder(ulong fromRevision) => FromRevision = fromRevision;

    public ulong FromRevision { get; }

    public IReadOnlyList<WatcherLog> Watchers => [.. _watchers.Select(w => w.Log)];

    /// <summary>
    /// Starts <paramref name="count"/> watchers from <paramref name="fromRevision"/>, watcher i with the endpoints rotated
    /// by i (its first stream on node i).
    /// </summary>
    public static WatchRecorder Start(IReadOnlyList<Uri> endpoints, Func<HttpMessageHandler> handler, string? token, int count, ulong fromRevision)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(handler);
        var recorder = new WatchRecorder(fromRevision);
        for (var i = 0; i < count; i++)
        {
            var log = new WatcherLog(i);
            var counting = new CountingHandler(handler(), log);
            var client = new RaftKvClient(new RaftKvClientOptions
            {
                Endpoints = [.. endpoints.Skip(i % endpoints.Count), .. endpoints.Take(i % endpoints.Count)],
                AttemptTimeout = TimeSpan.FromSeconds(2),
                MaxAttempts = 50, // in a row: long enough to outlast any fault of the run
                RetryMaxDelay = TimeSpan.FromMilliseconds(300),
                Token = token,
            }, counting);
            recorder._owned.Add(client);
            recorder._owned.Add(counting);
            recorder._watchers.Add((log, Task.Run(() => recorder.WatchAsync(client, log))));
        }
        return recorder;
    }

    private async Task WatchAsync(RaftKvClient client, WatcherLog log)
    {
        try
        {
            await foreach (var change in client.WatchAsync(Workload.KeyPrefix, isPrefix: true, fromRevision: FromRevision, cancellationToken: _stop.Token).ConfigureAwait(false))
            {
                log.Add(new WatchedChange(change.Revision, change.Type, change.Key, change.Value));
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Stopped.
        }
        catch (Exception error)
        {
            log.Failure = error;
        }
    }

    /// <summary>
    /// Waits until every watcher has received a change at <paramref name="endRevision"/> or later (the end marker's), or
    /// <paramref name="within"/> has passed, then stops them. Returns the watchers that did not get there.
    /// </summary>
    public async Task<IReadOnlyList<string>> StopAtAsync(ulong endRevision, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (DateTime.UtcNow < deadline && _watchers.Any(w => w.Log.Failure is null && w.Log.LastRevision < endRevision))
        {
            await Task.Delay(100).ConfigureAwait(false);
        }
        await _stop.CancelAsync().ConfigureAwait(false);
        await Task.WhenAll(_watchers.Select(w => w.Task)).ConfigureAwait(false);
        return [.. _watchers.Where(w => w.Log.Failure is null && w.Log.LastRevision < endRevision)
            .Select(w => $"watcher {w.Log.Number} stopped at r{w.Log.LastRevision}, short of the end marker's r{endRevision} after {within.TotalSeconds:F0} s")];
    }

    /// <summary>
    /// Every watcher's changes up to <paramref name="endRevision"/> against the workload's history and final state; the
    /// problems found (none: every stream equals the committed history of the keys).
    /// </summary>
    public IReadOnlyList<string> Check(IReadOnlyList<Operation> history, IReadOnlyDictionary<string, string?> final, ulong endRevision)
    {
        ArgumentNullException.ThrowIfNull(history);
        ArgumentNullException.ThrowIfNull(final);
        var problems = new List<string>();
        var streams = _watchers.Select(w => (w.Log, Changes: (IReadOnlyList<WatchedChange>)[.. w.Log.Changes.Where(c => c.Revision <= endRevision)])).ToList();
        foreach (var (log, changes) in streams)
        {
            if (log.Failure is not null)
            {
                problems.Add($"watcher {log.Number} failed: {log.Failure.GetType().Name}: {log.Failure.Message}");
            }
            problems.AddRange(CheckStream(log.Number, changes, history, final, FromRevision, endRevision).Select(p => $"watcher {log.Number}: {p}"));
        }
        // The same history on every watcher: each starts from the same revision and must end at the end marker.
        for (var i = 1; i < streams.Count; i++)
        {
            var (a, b) = (streams[0].Changes, streams[i].Changes);
            var at = Enumerable.Range(0, Math.Min(a.Count, b.Count)).FirstOrDefault(k => a[k] != b[k], -1);
            if (at >= 0 || a.Count != b.Count)
            {
                var k = at >= 0 ? at : Math.Min(a.Count, b.Count);
                problems.Add($"watchers 0 and {i} differ at change {k}: {(k < a.Count ? a[k] : "(none)")} against {(k < b.Count ? b[k] : "(none)")}");
            }
        }
        return problems;
    }

    /// <summary>One stream against the history: the checks that make it the committed history of its keys.</summary>
    public static IReadOnlyList<string> CheckStream(int watcher, IReadOnlyList<WatchedChange> changes, IReadOnlyList<Operation> history,
        IReadOnlyDictionary<string, string?> final, ulong fromRevision, ulong endRevision)
    {
        ArgumentNullException.ThrowIfNull(changes);
        ArgumentNullException.ThrowIfNull(history);
        ArgumentNullException.ThrowIfNull(final);
        var problems = new List<string>();

        // In order: revisions never go back, and a revision names a key once (a transaction's changes share its revision).
        var seen = new HashSet<(ulong, string)>();
        for (var i = 0; i < changes.Count; i++)
        {
            var change = changes[i];
            if (change.Revision < fromRevision || (i > 0 && change.Revision < changes[i - 1].Revision))
            {
                problems.Add($"out of order: {change} after {(i > 0 ? changes[i - 1].ToString() : "the start at r" + fromRevision)}");
            }
            if (!seen.Add((change.Revision, change.Key)))
            {
                problems.Add($"repeated: {change}");
            }
            if (!change.Key.StartsWith(Workload.KeyPrefix, StringComparison.Ordinal))
            {
                problems.Add($"outside the watched prefix: {change}");
            }
        }

        // Nothing invented: every put writes a value some client asked to write to that key (every value is unique), and
        // every delete deletes a key some client asked to delete; a value is put once.
        var asked = new HashSet<(string Key, string Value)>();
        var deletable = new HashSet<string>(StringComparer.Ordinal) { };
        foreach (var operation in history)
        {
            foreach (var (kind, key, value) in Writes(operation))
            {
                if (kind == "PUT")
                {
                    asked.Add((key, value!));
                }
                else
                {
                    deletable.Add(key);
                }
            }
        }
        var put = new HashSet<string>(StringComparer.Ordinal);
        foreach (var change in changes.Where(c => c.Key != EndMarker))
        {
            if (change.Type == "PUT" && (change.Value is null || !asked.Contains((change.Key, change.Value))))
            {
                problems.Add($"invented: {change} (no client wrote that value to that key)");
            }
            else if (change.Type == "PUT" && !put.Add(change.Value!))
            {
                problems.Add($"a value put twice: {change}");
            }
            else if (change.Type == "DELETE" && !deletable.Contains(change.Key))
            {
                problems.Add($"invented: {change} (no client deleted that key)");
            }
            else if (change.Type is not ("PUT" or "DELETE"))
            {
                problems.Add($"a change of an unknown type: {change}");
            }
        }

        // Nothing missing: every answered write that changed a key is there, at the revision it was answered with.
        var byRevision = changes.ToLookup(c => (c.Revision, c.Key));
        foreach (var operation in history.Where(o => !o.Unknown && o.Index >= fromRevision && o.Index <= endRevision))
        {
            foreach (var (kind, key, value) in Writes(operation))
            {
                var expected = new WatchedChange(operation.Index, kind, key, value);
                if (!byRevision[(operation.Index, key)].Contains(expected))
                {
                    problems.Add($"missing: {expected}, answered to client {operation.Client}"
                        + (byRevision[(operation.Index, key)].FirstOrDefault() is { } other ? $" (got {other})" : ""));
                }
            }
        }

        // Replayed, the changes give every key's final state (the watch started before the first write).
        var state = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (var change in changes.Where(c => c.Key != EndMarker))
        {
            state[change.Key] = change.Type == "PUT" ? change.Value : null;
        }
        foreach (var (key, value) in final)
        {
            if (state.GetValueOrDefault(key) != value)
            {
                problems.Add($"replayed, {key} ends as {state.GetValueOrDefault(key) ?? "(absent)"}, but it is {value ?? "(absent)"}");
            }
        }
        return problems;
    }

    /// <summary>
    /// The changes an operation made if it took effect, as a watcher sees them: a set or a successful compare-and-set puts,
    /// a delete of a key that was there deletes, a transaction's branch that ran makes its puts and deletes. For an
    /// operation whose outcome is unknown: every change it might have made (both of a transaction's branches; a delete).
    /// </summary>
    private static IEnumerable<(string Kind, string Key, string? Value)> Writes(Operation operation)
    {
        switch (operation.Kind)
        {
            case OperationKind.Set:
                yield return ("PUT", operation.Key, operation.Value);
                break;
            case OperationKind.Cas when operation.Succeeded || operation.Unknown:
                yield return ("PUT", operation.Key, operation.Value);
                break;
            case OperationKind.Delete when operation.Found || operation.Unknown:
                yield return ("DELETE", operation.Key, null);
                break;
            case OperationKind.Txn:
                var branches = operation.Unknown ? operation.Success.Concat(operation.Failure)
                    : operation.Succeeded ? operation.Success : operation.Failure;
                var steps = branches.ToList();
                for (var i = 0; i < steps.Count; i++)
                {
                    var step = steps[i];
                    if (step.Kind == TxnStepKind.Put)
                    {
                        yield return ("PUT", step.Key, step.Value);
                    }
                    // A delete changes something only if the key was there: what the step saw (known outcomes).
                    else if (step.Kind == TxnStepKind.Delete && (operation.Unknown || (i < operation.Seen.Count && operation.Seen[i].Found)))
                    {
                        yield return ("DELETE", step.Key, null);
                    }
                }
                break;
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_stop.IsCancellationRequested)
        {
            await _stop.CancelAsync().ConfigureAwait(false);
        }
        try
        {
            await Task.WhenAll(_watchers.Select(w => w.Task)).ConfigureAwait(false);
        }
        finally
        {
            foreach (var owned in _owned)
            {
                owned.Dispose();
            }
            _stop.Dispose();
        }
    }

    /// <summary>Counts the watch streams a watcher opens.</summary>
    private sealed class CountingHandler(HttpMessageHandler inner, WatcherLog log) : DelegatingHandler(inner)
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.RequestUri?.AbsolutePath == "/watch")
            {
                log.Opened();
            }
            return base.SendAsync(request, cancellationToken);
        }
    }
}
