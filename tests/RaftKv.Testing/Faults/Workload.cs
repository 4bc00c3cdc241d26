using System.Diagnostics;
using System.Globalization;
using RaftKv.Client;
using RaftKv.Contracts;
using RaftKv.Testing.Linearizability;

namespace RaftKv.Testing.Faults;

/// <summary>What the clients did, besides the history: counts for the report.</summary>
public sealed class WorkloadCounts
{
    private long _acknowledgedWrites;
    private long _reads;
    private long _unknown;
    private long _failed;
    private long _transactionsSucceeded;
    private long _transactionsFailed;

    public long AcknowledgedWrites => Interlocked.Read(ref _acknowledgedWrites);

    public long Reads => Interlocked.Read(ref _reads);

    public long Unknown => Interlocked.Read(ref _unknown);

    /// <summary>Operations that did not happen (refused, no node reachable): left out of the history.</summary>
    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Answered transactions whose comparisons held (the success branch ran).</summary>
    public long TransactionsSucceeded => Interlocked.Read(ref _transactionsSucceeded);

    /// <summary>Answered transactions whose comparisons failed (the failure branch ran).</summary>
    public long TransactionsFailed => Interlocked.Read(ref _transactionsFailed);

    public List<string> Anomalies { get; } = [];

    internal void Transaction(bool succeeded) => Interlocked.Increment(ref succeeded ? ref _transactionsSucceeded : ref _transactionsFailed);

    internal void Acknowledged() => Interlocked.Increment(ref _acknowledgedWrites);

    internal void Read() => Interlocked.Increment(ref _reads);

    private readonly Dictionary<string, (ulong Write, ulong Delete, bool UnknownDelete)> _lastAcknowledged = new(StringComparer.Ordinal);

    /// <summary>Per key: the log index of the last acknowledged write and delete, and whether a delete's outcome is unknown.</summary>
    public IReadOnlyDictionary<string, (ulong Write, ulong Delete, bool UnknownDelete)> LastAcknowledged
    {
        get
        {
            lock (_lastAcknowledged)
            {
                return new Dictionary<string, (ulong, ulong, bool)>(_lastAcknowledged, StringComparer.Ordinal);
            }
        }
    }

    internal void AcknowledgedAt(string key, ulong index, bool deleted)
    {
        lock (_lastAcknowledged)
        {
            var last = _lastAcknowledged.GetValueOrDefault(key);
            _lastAcknowledged[key] = deleted ? last with { Delete = Math.Max(last.Delete, index) } : last with { Write = Math.Max(last.Write, index) };
        }
    }

    internal void DeleteOutcomeUnknown(string key)
    {
        lock (_lastAcknowledged)
        {
            _lastAcknowledged[key] = _lastAcknowledged.GetValueOrDefault(key) with { UnknownDelete = true };
        }
    }

    internal void Indeterminate() => Interlocked.Increment(ref _unknown);

    internal void Fail() => Interlocked.Increment(ref _failed);

    public override string ToString() =>
        $"{AcknowledgedWrites:N0} acknowledged writes, {Reads:N0} reads, {Unknown:N0} outcomes unknown, {Failed:N0} refused or unreachable"
        + (TransactionsSucceeded + TransactionsFailed > 0 ? $"; transactions: {TransactionsSucceeded:N0} took the success branch, {TransactionsFailed:N0} the failure branch" : "");
}

/// <summary>
/// Several concurrent clients doing random reads, writes and compare-and-sets on a handful of keys, so that they collide,
/// each with one request in flight and its own session. Every operation's invocation and completion times and result go
/// into a <see cref="History"/>. A write that times out or loses its connection is recorded with an unknown outcome.
/// With transactions, a share of the operations are transactions on a pair of keys (k0 with k1, k2 with k3, …): a
/// compare-and-write of both, an atomic read of both, a write guarded by the version last read, a move (read, delete,
/// write the other); the pairs keep the linearizability check's groups of keys small.
/// </summary>
public sealed class Workload
{
    private readonly IReadOnlyList<Uri> _endpoints;
    private readonly Func<HttpMessageHandler> _handler;
    private readonly int _clients;
    private readonly int _keys;
    private readonly int _seed;
    private readonly int _transactions;

    private readonly string? _token;

    /// <summary>A workload; <paramref name="transactions"/> is the percentage of operations that are transactions (they need an even number of keys).</summary>
    public Workload(IReadOnlyList<Uri> endpoints, Func<HttpMessageHandler> handler, int clients = 6, int keys = 4, int seed = 1, string? token = null,
        int transactions = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(transactions);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(transactions, 100);
        if (transactions > 0 && (keys < 2 || keys % 2 != 0))
        {
            throw new ArgumentException($"transactions work on pairs of keys: {keys} keys", nameof(keys));
        }
        _transactions = transactions;
        _token = token;
        _endpoints = endpoints;
        _handler = handler;
        ArgumentOutOfRangeException.ThrowIfGreaterThan(clients, FinalReader);
        _clients = clients;
        _keys = keys;
        _seed = seed;
    }

    private const int FinalReader = 99;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly long[] _lastReturn = new long[FinalReader + 1];

    /// <summary>Every operation, its times in microseconds since the workload was created.</summary>
    public History History { get; } = new();

    public WorkloadCounts Counts { get; } = new();

    public Task RunAsync(CancellationToken stop) =>
        Task.WhenAll(Enumerable.Range(0, _clients).Select(client => Task.Run(() => ClientAsync(client, stop), CancellationToken.None)));

    /// <summary>
    /// After the cluster healed: one linearizable read of every key, so the history ends with the final values. Returns
    /// each key's final state (its version is the log index of its last write).
    /// </summary>
    public async Task<IReadOnlyDictionary<string, KvResponse>> ReadEverythingAsync()
    {
        using var handler = _handler();
        using var client = NewClient(handler, FinalReader, TimeSpan.FromSeconds(10));
        var final = new Dictionary<string, KvResponse>(StringComparer.Ordinal);
        for (var key = 0; key < _keys; key++)
        {
            var call = Call(FinalReader);
            var response = await client.GetAsync(Key(key), Consistency.Linearizable).ConfigureAwait(false);
            History.Add(Operation.Get(FinalReader, Key(key), call, Return(FinalReader, call), response.Found ? response.Value : null));
            final[Key(key)] = response;
        }
        return final;
    }

    /// <summary>
    /// Acknowledged writes missing from the final state: a key whose last write is older than an acknowledged one, or
    /// that is absent though no delete came after its last acknowledged write.
    /// </summary>
    public IReadOnlyList<string> LostWrites(IReadOnlyDictionary<string, KvResponse> final)
    {
        ArgumentNullException.ThrowIfNull(final);
        var lost = new List<string>();
        foreach (var (key, last) in Counts.LastAcknowledged)
        {
            var state = final[key];
            if (state.Found && (state.Version < last.Write || (last.Delete > 0 && state.Version < last.Delete)))
            {
                lost.Add($"{key}: holds the write at index {state.Version}, older than the acknowledged {(state.Version < last.Write ? "write at " + last.Write : "delete at " + last.Delete)}");
            }
            else if (!state.Found && last.Write > last.Delete && !last.UnknownDelete)
            {
                lost.Add($"{key}: absent, but the write acknowledged at index {last.Write} was never deleted");
            }
        }
        return lost;
    }

    private async Task ClientAsync(int client, CancellationToken stop)
    {
        var random = new Random(_seed * 1_000 + client);
        var lastSeen = new Dictionary<string, string>(StringComparer.Ordinal);
        var lastRead = new Dictionary<string, (string? Value, ulong Version)>(StringComparer.Ordinal); // for version comparisons
        using var handler = _handler();
        var http = NewClient(handler, client, TimeSpan.FromSeconds(3));
        var written = 0;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var index = random.Next(_keys);
                var key = Key(index);
                var transact = _transactions > 0 && random.Next(100) < _transactions; // no draw without transactions: the same runs as before
                var roll = transact ? -1 : random.Next(100);
                if (transact)
                {
                    await TransactAsync(http, client, random, key, Key(index ^ 1), () => $"c{client}-{++written}", lastSeen, lastRead, stop).ConfigureAwait(false);
                }
                else if (roll < 45)
                {
                    var response = await ReadAsync(http, client, key, stop).ConfigureAwait(false);
                    if (response is not null)
                    {
                        lastRead[key] = response.Found ? (response.Value, response.Version) : (null, 0);
                        if (response is { Found: true, Value: { } value })
                        {
                            lastSeen[key] = value;
                        }
                    }
                }
                else if (roll < 50)
                {
                    await DeleteAsync(http, client, key, stop).ConfigureAwait(false);
                }
                else
                {
                    // Mostly plain writes; three in ten are compare-and-sets against the last value this client saw.
                    var value = $"c{client}-{++written}";
                    var expected = roll >= 85 && lastSeen.TryGetValue(key, out var seen) ? seen : null;
                    await WriteAsync(http, client, key, value, expected, stop).ConfigureAwait(false);
                }
                if (http.KnownLeader is null)
                {
                    await Task.Delay(random.Next(5, 50), stop).ConfigureAwait(false); // no leader known: don't spin
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The run is over.
        }
        finally
        {
            http.Dispose();
        }
    }

    private async Task<KvResponse?> ReadAsync(RaftKvClient http, int client, string key, CancellationToken stop)
    {
        var call = Call(client);
        try
        {
            var response = await http.GetAsync(key, Consistency.Linearizable, stop).ConfigureAwait(false);
            History.Add(Operation.Get(client, key, call, Return(client, call), response.Found ? response.Value : null));
            Counts.Read();
            return response;
        }
        catch (Exception e) when (e is ClusterUnavailableException or OutcomeUnknownException)
        {
            Counts.Fail(); // a read that got no answer changed nothing
            return null;
        }
    }

    private async Task WriteAsync(RaftKvClient http, int client, string key, string value, string? expected, CancellationToken stop)
    {
        var call = Call(client);
        try
        {
            var response = expected is null
                ? await http.SetAsync(key, value, stop).ConfigureAwait(false)
                : await http.CompareAndSetAsync(key, expected, value, stop).ConfigureAwait(false);
            var done = Return(client, call);
            if (!response.Ok && !response.CasMismatch)
            {
                Unexpected(client, $"a write to {key}", response); // stale_sequence: a session went backwards
                return;
            }
            History.Add((expected is null
                ? Operation.Set(client, key, value, call, done)
                : Operation.Cas(client, key, expected, value, call, done, response.Ok)) with { Index = response.Index });
            if (response.Ok)
            {
                Counts.Acknowledged();
                Counts.AcknowledgedAt(key, response.Index, deleted: false);
            }
        }
        catch (OutcomeUnknownException)
        {
            History.Add(expected is null
                ? Operation.Set(client, key, value, call, long.MaxValue)
                : Operation.Cas(client, key, expected, value, call, long.MaxValue, succeeded: false));
            Counts.Indeterminate();
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // Stopped mid-write: the outcome is unknown.
            History.Add(expected is null
                ? Operation.Set(client, key, value, call, long.MaxValue)
                : Operation.Cas(client, key, expected, value, call, long.MaxValue, succeeded: false));
            Counts.Indeterminate();
            throw;
        }
        catch (ClusterUnavailableException)
        {
            Counts.Fail(); // never sent to any node
        }
    }

    private async Task DeleteAsync(RaftKvClient http, int client, string key, CancellationToken stop)
    {
        var call = Call(client);
        try
        {
            var response = await http.DeleteAsync(key, stop).ConfigureAwait(false);
            var done = Return(client, call);
            if (!response.Ok)
            {
                Unexpected(client, $"a delete of {key}", response);
                return;
            }
            History.Add(Operation.Delete(client, key, call, done, response.Found) with { Index = response.Index });
            Counts.Acknowledged();
            Counts.AcknowledgedAt(key, response.Index, deleted: true);
        }
        catch (OutcomeUnknownException)
        {
            History.Add(Operation.Delete(client, key, call, long.MaxValue, found: false));
            Counts.Indeterminate();
            Counts.DeleteOutcomeUnknown(key);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            History.Add(Operation.Delete(client, key, call, long.MaxValue, found: false));
            Counts.Indeterminate();
            Counts.DeleteOutcomeUnknown(key);
            throw;
        }
        catch (ClusterUnavailableException)
        {
            Counts.Fail();
        }
    }

    /// <summary>
    /// One transaction on <paramref name="key"/> and its pair <paramref name="other"/>, of one of four shapes: write
    /// both if the key holds what this client last saw (or is absent), else read both; read both; write the key if its
    /// version is the one last read, else read it; if the key exists read it, delete it and write the other, else read
    /// the other.
    /// </summary>
    private async Task TransactAsync(RaftKvClient http, int client, Random random, string key, string other, Func<string> newValue,
        Dictionary<string, string> lastSeen, Dictionary<string, (string? Value, ulong Version)> lastRead, CancellationToken stop)
    {
        List<TxnCondition> conditions;
        List<TxnStep> success, failure;
        var shape = random.Next(4);
        if (shape == 2 && !lastRead.ContainsKey(key))
        {
            shape = 0; // no version read yet
        }
        switch (shape)
        {
            case 0:
                conditions = [lastSeen.TryGetValue(key, out var seen) ? TxnCondition.ValueIs(key, seen) : TxnCondition.Absent(key)];
                success = [TxnStep.Put(key, newValue()), TxnStep.Put(other, newValue())];
                failure = [TxnStep.Get(key), TxnStep.Get(other)];
                break;
            case 1:
                conditions = [];
                success = [TxnStep.Get(key), TxnStep.Get(other)];
                failure = [];
                break;
            case 2:
                var (valueRead, version) = lastRead[key];
                conditions = [TxnCondition.VersionIs(key, version, valueRead)];
                success = [TxnStep.Put(key, newValue())];
                failure = [TxnStep.Get(key)];
                break;
            default:
                conditions = [TxnCondition.Exists(key)];
                success = [TxnStep.Get(key), TxnStep.Delete(key), TxnStep.Put(other, newValue())];
                failure = [TxnStep.Get(other)];
                break;
        }
        var request = new TxnRequest
        {
            Compare = [.. conditions.Select(c => c.Kind switch
            {
                ConditionKind.ValueIs => new TxnCompare { Key = c.Key, Target = "value", Op = "=", Value = c.Value },
                ConditionKind.Exists => new TxnCompare { Key = c.Key, Target = "exists", Op = "=", Exists = true },
                ConditionKind.Absent => new TxnCompare { Key = c.Key, Target = "exists", Op = "=", Exists = false },
                _ => new TxnCompare { Key = c.Key, Target = "version", Op = "=", Version = c.Version },
            })],
            Success = [.. success.Select(Request)],
            Failure = [.. failure.Select(Request)],
        };
        var call = Call(client);
        try
        {
            var response = await http.TxnAsync(request, stop).ConfigureAwait(false);
            var done = Return(client, call);
            var ran = response.Succeeded ? success : failure;
            if (response.Results.Count != ran.Count
                || response.Results.Zip(ran).Any(p => p.First.Key != p.Second.Key || !p.First.Type.Equals(p.Second.Kind.ToString(), StringComparison.OrdinalIgnoreCase)))
            {
                lock (Counts.Anomalies)
                {
                    Counts.Anomalies.Add($"c{client}: a transaction's results do not match the branch that ran (index {response.Index}): "
                        + string.Join(", ", response.Results.Select(r => $"{r.Type} {r.Key}")));
                }
                return;
            }
            var seenNow = response.Results.Zip(ran).Select(p => p.Second.Kind switch
            {
                TxnStepKind.Get => p.First.Found ? TxnSeen.Of(p.First.Value ?? "") : TxnSeen.Absent,
                _ => new TxnSeen(p.First.Found),
            }).ToList();
            History.Add(Operation.Txn(client, conditions, success, failure, call, done, response.Succeeded, seenNow) with { Index = response.Index });
            Counts.Transaction(response.Succeeded);
            foreach (var (result, step) in response.Results.Zip(ran))
            {
                switch (step.Kind)
                {
                    case TxnStepKind.Get:
                        lastRead[step.Key] = result.Found ? (result.Value, result.Version) : (null, 0);
                        if (result is { Found: true, Value: { } value })
                        {
                            lastSeen[step.Key] = value;
                        }
                        break;
                    default:
                        Counts.AcknowledgedAt(step.Key, response.Index, deleted: step.Kind == TxnStepKind.Delete);
                        break;
                }
            }
            if (ran.Any(s => s.Kind != TxnStepKind.Get))
            {
                Counts.Acknowledged();
            }
            else
            {
                Counts.Read();
            }
        }
        catch (Exception e) when (e is OutcomeUnknownException or ClusterUnavailableException
            || (e is OperationCanceledException && stop.IsCancellationRequested))
        {
            // Unknown: no attempt answered (OutcomeUnknown). ClusterUnavailable says no attempt can have been applied;
            // it is recorded as unknown too, which costs the check nothing (an unknown operation may take effect never),
            // while one recorded as not having happened that did would be a false alarm.
            History.Add(Operation.Txn(client, conditions, success, failure, call, long.MaxValue, succeeded: false));
            Counts.Indeterminate();
            foreach (var step in success.Concat(failure).Where(s => s.Kind == TxnStepKind.Delete))
            {
                Counts.DeleteOutcomeUnknown(step.Key);
            }
            if (e is OperationCanceledException)
            {
                throw;
            }
        }
        catch (ConflictException e)
        {
            lock (Counts.Anomalies)
            {
                Counts.Anomalies.Add($"c{client}: '{e.Message}' answering a transaction"); // stale_sequence: a session went backwards
            }
        }
    }

    private static TxnOperation Request(TxnStep step) =>
        new() { Type = step.Kind.ToString().ToUpperInvariant(), Key = step.Key, Value = step.Value };

    /// <summary>An answer no correct server gives here (stale_sequence: a session went backwards; malformed).</summary>
    private void Unexpected(int client, string what, KvResponse response)
    {
        lock (Counts.Anomalies)
        {
            Counts.Anomalies.Add($"c{client}: '{response.Error}' answering {what} (index {response.Index})");
        }
    }

    private long Now() => _clock.Elapsed.Ticks / TimeSpan.TicksPerMicrosecond;

    /// <summary>
    /// A client's call time: strictly after its previous return, so that its own operations never look concurrent
    /// (times are whole microseconds, and the checker treats a call and a return at the same instant as overlapping).
    /// </summary>
    private long Call(int client) => Math.Max(Now(), Volatile.Read(ref _lastReturn[client]) + 1);

    private long Return(int client, long call)
    {
        var now = Math.Max(Now(), call);
        Volatile.Write(ref _lastReturn[client], now);
        return now;
    }

    private RaftKvClient NewClient(HttpMessageHandler handler, int client, TimeSpan timeout) => new(new RaftKvClientOptions
    {
        Endpoints = _endpoints,
        Timeout = timeout,
        AttemptTimeout = TimeSpan.FromSeconds(1.5),
        MaxAttempts = 6,
        RetryMaxDelay = TimeSpan.FromMilliseconds(300),
        ClientId = $"jepsen-{_seed}-{client}",
        Token = _token,
    }, handler);

    /// <summary>What every key of the workload starts with.</summary>
    public const string KeyPrefix = "k";

    /// <summary>The workload's key number <paramref name="index"/>: k0, k1, …</summary>
    public static string Key(int index) => KeyPrefix + index.ToString(CultureInfo.InvariantCulture);
}
