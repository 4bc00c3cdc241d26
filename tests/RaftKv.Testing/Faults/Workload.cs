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

    public long AcknowledgedWrites => Interlocked.Read(ref _acknowledgedWrites);

    public long Reads => Interlocked.Read(ref _reads);

    public long Unknown => Interlocked.Read(ref _unknown);

    /// <summary>Operations that did not happen (refused, no node reachable): left out of the history.</summary>
    public long Failed => Interlocked.Read(ref _failed);

    public List<string> Anomalies { get; } = [];

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
        $"{AcknowledgedWrites:N0} acknowledged writes, {Reads:N0} reads, {Unknown:N0} outcomes unknown, {Failed:N0} refused or unreachable";
}

/// <summary>
/// Several concurrent clients doing random reads, writes and compare-and-sets on a handful of keys, so that they collide,
/// each with one request in flight and its own session. Every operation's invocation and completion times and result go
/// into a <see cref="History"/>. A write that times out or loses its connection is recorded with an unknown outcome.
/// </summary>
public sealed class Workload
{
    private readonly IReadOnlyList<Uri> _endpoints;
    private readonly Func<HttpMessageHandler> _handler;
    private readonly int _clients;
    private readonly int _keys;
    private readonly int _seed;

    private readonly string? _token;

    public Workload(IReadOnlyList<Uri> endpoints, Func<HttpMessageHandler> handler, int clients = 6, int keys = 4, int seed = 1, string? token = null)
    {
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
        using var handler = _handler();
        var http = NewClient(handler, client, TimeSpan.FromSeconds(3));
        var written = 0;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                var key = Key(random.Next(_keys));
                var roll = random.Next(100);
                if (roll < 45)
                {
                    var value = await ReadAsync(http, client, key, stop).ConfigureAwait(false);
                    if (value is not null)
                    {
                        lastSeen[key] = value;
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

    private async Task<string?> ReadAsync(RaftKvClient http, int client, string key, CancellationToken stop)
    {
        var call = Call(client);
        try
        {
            var response = await http.GetAsync(key, Consistency.Linearizable, stop).ConfigureAwait(false);
            History.Add(Operation.Get(client, key, call, Return(client, call), response.Found ? response.Value : null));
            Counts.Read();
            return response.Value;
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
            History.Add(expected is null
                ? Operation.Set(client, key, value, call, done)
                : Operation.Cas(client, key, expected, value, call, done, response.Ok));
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
            History.Add(Operation.Delete(client, key, call, done, response.Found));
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

    private static string Key(int index) => "k" + index.ToString(CultureInfo.InvariantCulture);
}
