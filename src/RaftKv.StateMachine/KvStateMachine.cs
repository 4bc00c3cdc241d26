using System.Collections.Immutable;
using System.Text;
using System.Text.Unicode;
using RaftKv.RaftCore;

namespace RaftKv.StateMachine;

/// <summary>
/// Bounds of keys, values and client sessions (configuration section RaftKv:Kv). Session expiry counts log indexes, never
/// wall-clock time, so every node agrees.
/// </summary>
public sealed record KvOptions : IValidatedOptions
{
    /// <summary>The longest key, in UTF-8 bytes.</summary>
    public int MaxKeyBytes { get; init; } = 1024;

    /// <summary>The longest value, in UTF-8 bytes.</summary>
    public int MaxValueBytes { get; init; } = 1024 * 1024;

    /// <summary>Sessions kept; past this the least recently used are dropped, oldest first.</summary>
    public int MaxSessions { get; init; } = 100_000;

    /// <summary>A session not used for this many log indexes expires.</summary>
    public ulong SessionExpiryIndexes { get; init; } = 1_000_000;

    /// <summary>Changes kept in memory for watchers (GET /watch); a watcher further behind than this must list again.</summary>
    public int WatchHistoryEvents { get; init; } = 10_000;

    /// <summary>Watch streams one node serves at once; one more is answered 503.</summary>
    public int MaxWatchers { get; init; } = 1_000;

    /// <summary>Leases the store keeps at once; a grant beyond them is refused (replicated: every node refuses the same one).</summary>
    public int MaxLeases { get; init; } = 100_000;

    /// <summary>The longest time to live a lease may ask for, in seconds (the shortest is 1).</summary>
    public long MaxLeaseTtlSeconds { get; init; } = 365L * 24 * 3600;

    public IEnumerable<string> Validate()
    {
        if (MaxKeyBytes is < 1 or > 64 * 1024)
        {
            yield return $"MaxKeyBytes: {MaxKeyBytes} is outside [1, 65536]";
        }
        if (MaxValueBytes is < 1 or > 8 * 1024 * 1024)
        {
            yield return $"MaxValueBytes: {MaxValueBytes} is outside [1, 8388608]";
        }
        if (MaxSessions is < 1 or > 10_000_000)
        {
            yield return $"MaxSessions: {MaxSessions} is outside [1, 10000000]";
        }
        if (SessionExpiryIndexes < 1)
        {
            yield return "SessionExpiryIndexes: must be at least 1";
        }
        if (WatchHistoryEvents is < 1 or > 10_000_000)
        {
            yield return $"WatchHistoryEvents: {WatchHistoryEvents} is outside [1, 10000000]";
        }
        if (MaxWatchers is < 1 or > 100_000)
        {
            yield return $"MaxWatchers: {MaxWatchers} is outside [1, 100000]";
        }
        if (MaxLeases is < 1 or > 10_000_000)
        {
            yield return $"MaxLeases: {MaxLeases} is outside [1, 10000000]";
        }
        if (MaxLeaseTtlSeconds is < 1 or > 10L * 365 * 24 * 3600)
        {
            yield return $"MaxLeaseTtlSeconds: {MaxLeaseTtlSeconds} is outside [1, 315360000] (ten years)";
        }
    }
}

/// <summary>
/// The replicated key-value map: key → (value, version = the index that last wrote it), plus exactly-once client
/// sessions (client id → last sequence applied and its answer). Apply is deterministic. The items are an ordered map
/// changed in place (<see cref="KvMap{TValue}"/>) whose clone costs O(1), the sessions and leases immutable maps, so a
/// snapshot (or a digest, from any thread) captures the state in O(1) and is written out while applies go on.
/// Sessions assume one request in flight per client id, as with LogCabin and Dragonboat: a client numbers its writes
/// 1, 2, 3… and retries one with the same number until it gets an answer.
/// </summary>
public sealed class KvStateMachine : IStateMachine, IStateDigest
{
    private const uint SnapshotFormatV1 = 0x4B565331; // "KVS1": items without their create revision, sessions' answers as KV results
    private const uint SnapshotFormatV2 = 0x4B565332; // "KVS2": items with their create revision, sessions' answers as their bytes
    private const uint SnapshotFormat = 0x4B565333; // "KVS3": KVS2 with each item's lease, and the leases
    private readonly KvOptions _options;
    // The items, in key order (listings walk it; a snapshot writes it out as it is). Changed on the loop under _gate, so
    // that a digest on another thread can clone it between two applies.
    private KvMap<KvItem> _items = new();
    private readonly Lock _gate = new();
    private ImmutableDictionary<string, Session> _sessions = ImmutableDictionary.Create<string, Session>(StringComparer.Ordinal);
    private ImmutableDictionary<ulong, KvLease> _leases = ImmutableDictionary<ulong, KvLease>.Empty;

    // What other threads may read without the gate: the leases and the index as of the last apply.
    private ImmutableDictionary<ulong, KvLease> _publishedLeases = ImmutableDictionary<ulong, KvLease>.Empty;
    private ulong _publishedIndex;

    public KvStateMachine(KvOptions? options = null)
    {
        _options = options ?? new KvOptions();
        var problems = _options.Validate().ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentException("invalid KV options: " + string.Join("; ", problems), nameof(options));
        }
        History = new WatchHistory(_options.WatchHistoryEvents);
    }

    /// <summary>The last changes applied, for watchers (derived from the log; not replicated, not in snapshots).</summary>
    public WatchHistory History { get; }

    // The changes of the write being applied, handed to History once it is applied.
    private readonly List<WatchEvent> _changes = [];

    public int Count => _items.Count;

    public int SessionCount => _sessions.Count;

    public LogIndex LastApplied { get; private set; }

    /// <summary>The store's revision as of the last apply (the last applied index), safe to read from any thread.</summary>
    public ulong Revision => Volatile.Read(ref _publishedIndex);

    /// <summary>The leases as of the last apply, by id, safe to read from any thread.</summary>
    public IReadOnlyDictionary<ulong, KvLease> Leases => Volatile.Read(ref _publishedLeases);

    public ReadOnlyMemory<byte> Apply(LogEntry entry)
    {
        Invariant.Assert(entry.Index > LastApplied, $"applied {entry.Index} after {LastApplied}");
        byte[] answer;
        lock (_gate)
        {
            LastApplied = entry.Index;
            _changes.Clear();
            answer = ApplyCommand(entry);
        }
        Publish();
        History.Append(_changes);
        return answer;
    }

    private void Publish()
    {
        Volatile.Write(ref _publishedLeases, _leases);
        Volatile.Write(ref _publishedIndex, LastApplied.Value);
    }

    private byte[] ApplyCommand(LogEntry entry)
    {
        var index = entry.Index.Value;
        var data = entry.Data.Span;
        try
        {
            if (!data.IsEmpty && data[0] == KvTxn.Format)
            {
                var txn = KvTxn.Decode(data);
                return Replayed(txn.ClientId, txn.Sequence, index) ?? Remember(txn.ClientId, txn.Sequence, index, Execute(txn, index));
            }
            if (!data.IsEmpty && data[0] == KvLeaseCommand.Format)
            {
                var lease = KvLeaseCommand.Decode(data);
                return Replayed(lease.ClientId, lease.Sequence, index) ?? Remember(lease.ClientId, lease.Sequence, index, Execute(lease, entry.Term, index).Encode());
            }
            var command = KvCommand.Decode(data, out var value, out var hasValue);
            return Replayed(command.ClientId, command.Sequence, index)
                ?? Remember(command.ClientId, command.Sequence, index, Execute(command, hasValue ? value : [], index));
        }
        catch (FormatException)
        {
            return KvResult.Failed(KvError.Malformed, index).Encode();
        }
    }

    /// <summary>
    /// A write of a session that must not run (again): its saved answer if it is a retry of the last sequence applied,
    /// a stale-sequence refusal if it is older; null if it is new (or has no session) and runs.
    /// </summary>
    private byte[]? Replayed(string? clientId, ulong sequence, ulong index)
    {
        if (clientId is null || !_sessions.TryGetValue(clientId, out var session))
        {
            return null;
        }
        if (sequence == session.Sequence)
        {
            // A retry of what was already applied: the same answer, nothing applied again.
            _sessions = _sessions.SetItem(clientId, session with { LastIndex = index });
            return session.Answer;
        }
        return sequence < session.Sequence ? KvResult.Failed(KvError.StaleSequence, index).Encode() : null;
    }

    /// <summary>Keeps a write's answer for its session (so that a retry gets it), then expires old sessions.</summary>
    private byte[] Remember(string? clientId, ulong sequence, ulong index, byte[] answer)
    {
        if (clientId is not null)
        {
            _sessions = _sessions.SetItem(clientId, new Session(sequence, answer, index));
        }
        ExpireSessions(index);
        return answer;
    }

    /// <summary>
    /// A transaction: every comparison against the state before it, then one branch's operations in order; its encoded
    /// result. A branch that would write with a lease that does not exist runs none of its operations (lease not found).
    /// </summary>
    private byte[] Execute(KvTxn txn, ulong index)
    {
        var succeeded = txn.Compare.All(Holds);
        var branch = succeeded ? txn.Success : txn.Failure;
        if (branch.Any(op => op.Kind == KvTxnOpKind.Put && op.Lease != 0 && !_leases.ContainsKey(op.Lease)))
        {
            return KvResult.Failed(KvError.LeaseNotFound, index).Encode();
        }
        var results = new List<KvTxnOpResult>();
        foreach (var op in branch)
        {
            var found = _items.TryGetValue(op.Key, out var current);
            switch (op.Kind)
            {
                case KvTxnOpKind.Put:
                    var created = Put(op.Key, Encoding.UTF8.GetBytes(op.Value ?? ""), index, found ? current : null, op.Lease);
                    results.Add(new KvTxnOpResult(op.Kind, op.Key, true, null, index, created));
                    break;
                case KvTxnOpKind.Delete:
                    Remove(op.Key, found ? current : null);
                    results.Add(new KvTxnOpResult(op.Kind, op.Key, found, null, 0, 0));
                    break;
                default:
                    results.Add(found
                        ? new KvTxnOpResult(op.Kind, op.Key, true, current.Text, current.Version, current.CreateRevision)
                        : new KvTxnOpResult(op.Kind, op.Key, false, null, 0, 0));
                    break;
            }
        }
        return new KvTxnResult(succeeded, results, index).Encode();
    }

    /// <summary>
    /// A lease's grant (its id is this index), or its revoke or expiry (its keys are deleted at this index). An expiry
    /// counts only in the term of the leader that decided it (the entry's term).
    /// </summary>
    private KvLeaseResult Execute(KvLeaseCommand command, Term term, ulong index)
    {
        if (command.Operation == KvLeaseOperation.Expire && command.Term != term.Value)
        {
            return new KvLeaseResult(false, KvError.StaleExpiry, command.Id, 0, 0, index);
        }
        if (command.Operation == KvLeaseOperation.Grant)
        {
            if (_leases.Count >= _options.MaxLeases)
            {
                return new KvLeaseResult(false, KvError.TooManyLeases, 0, command.TtlSeconds, 0, index);
            }
            _leases = _leases.Add(index, KvLease.Granted(index, command.TtlSeconds));
            return new KvLeaseResult(true, KvError.None, index, command.TtlSeconds, 0, index);
        }
        if (!_leases.TryGetValue(command.Id, out var lease))
        {
            return new KvLeaseResult(false, KvError.LeaseNotFound, command.Id, 0, 0, index);
        }
        foreach (var key in lease.Keys)
        {
            Invariant.Assert(_items.TryGetValue(key, out var item), $"lease {command.Id} holds '{key}', which the store does not");
            Remove(key, item);
        }
        _leases = _leases.Remove(command.Id);
        return new KvLeaseResult(true, KvError.None, command.Id, lease.TtlSeconds, lease.Keys.Count, index);
    }

    private bool Holds(KvCompare compare)
    {
        var found = _items.TryGetValue(compare.Key, out var current);
        if (compare.Target == KvCompareTarget.Value)
        {
            // Ordinal, as strings compare (UTF-16 code units, which UTF-8 byte order does not follow past U+FFFF).
            var order = found ? string.CompareOrdinal(current.Text, compare.Value) : 0;
            var equal = found && order == 0;
            return compare.Op switch
            {
                KvCompareOp.Equal => equal,
                KvCompareOp.NotEqual => !equal,
                KvCompareOp.Less => found && order < 0,
                _ => found && order > 0,
            };
        }
        var actual = compare.Target switch
        {
            KvCompareTarget.Version => found ? current.Version : 0,
            KvCompareTarget.CreateRevision => found ? current.CreateRevision : 0,
            _ => found ? 1UL : 0UL,
        };
        return compare.Op switch
        {
            KvCompareOp.Equal => actual == compare.Number,
            KvCompareOp.NotEqual => actual != compare.Number,
            KvCompareOp.Less => actual < compare.Number,
            _ => actual > compare.Number,
        };
    }

    /// <summary>A command, its value given as the UTF-8 bytes it carried; its encoded result.</summary>
    private byte[] Execute(KvCommand command, ReadOnlySpan<byte> value, ulong index)
    {
        var found = _items.TryGetValue(command.Key, out var current);
        if (command.Lease != 0 && !_leases.ContainsKey(command.Lease))
        {
            return KvResult.Failed(KvError.LeaseNotFound, index).Encode();
        }
        switch (command.Operation)
        {
            case KvOperation.Set:
                var stored = Stored(value);
                Put(command.Key, stored, index, found ? current : null, command.Lease);
                return KvResult.Encode(true, KvError.None, true, stored, true, index, index);
            case KvOperation.Delete:
                Remove(command.Key, found ? current : null);
                return KvResult.Encode(true, KvError.None, found, default, false, 0, index);
            case KvOperation.Cas:
                var matches = command.ExpectedVersion is { } version
                    ? (found ? current.Version : 0) == version
                    : command.Expected is null ? !found : found && current.Text == command.Expected;
                if (!matches)
                {
                    return found ? KvResult.Failed(KvError.CasMismatch, index, current) : KvResult.Failed(KvError.CasMismatch, index).Encode();
                }
                var replacement = Stored(value);
                Put(command.Key, replacement, index, found ? current : null, command.Lease);
                return KvResult.Encode(true, KvError.None, true, replacement, true, index, index);
            default:
                return Read(command.Key, index);
        }
    }

    /// <summary>
    /// A value's bytes as the store keeps them: a copy of valid UTF-8, or, for bytes that are not (never written by this
    /// server's codec), what decoding to a string and encoding back gives, as the store did when it kept strings.
    /// </summary>
    private static byte[] Stored(ReadOnlySpan<byte> value) =>
        Utf8.IsValid(value) ? value.ToArray() : Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(value));

    /// <summary>
    /// Writes a key with a lease (0: none; a write without one takes the key off its lease, as etcd's put does); returns
    /// its create revision (this index for a new key).
    /// </summary>
    private ulong Put(string key, byte[] value, ulong index, KvItem? current, ulong lease)
    {
        var created = current?.CreateRevision ?? index;
        _items.Set(key, new KvItem(value, index, created, lease));
        if (current?.Lease != lease)
        {
            Detach(key, current);
            if (lease != 0)
            {
                var held = _leases[lease];
                _leases = _leases.SetItem(lease, held with { Keys = held.Keys.Add(key) });
            }
        }
        _changes.Add(new WatchEvent(index, _changes.Count, WatchEventType.Put, key, value, current?.Value));
        return created;
    }

    private void Remove(string key, KvItem? current)
    {
        if (current is { } removed)
        {
            _items.Remove(key);
            Detach(key, removed);
            _changes.Add(new WatchEvent(LastApplied.Value, _changes.Count, WatchEventType.Delete, key, null, removed.Value));
        }
    }

    /// <summary>Takes a key off the lease it was written with, if any.</summary>
    private void Detach(string key, KvItem? current)
    {
        if (current is { Lease: not 0 and var lease } && _leases.TryGetValue(lease, out var held))
        {
            _leases = _leases.SetItem(lease, held with { Keys = held.Keys.Remove(key) });
        }
    }

    /// <summary>Drops sessions idle for longer than the expiry, and the least recently used beyond the bound.</summary>
    private void ExpireSessions(ulong index)
    {
        var overBound = _sessions.Count > _options.MaxSessions;
        if (!overBound && index % 1024 != 0)
        {
            return; // expiry by age is checked every 1,024 indexes; the bound at once
        }
        var expired = _sessions.Where(s => s.Value.LastIndex + _options.SessionExpiryIndexes < index).Select(s => s.Key).ToList();
        var sessions = _sessions.RemoveRange(expired);
        if (sessions.Count > _options.MaxSessions)
        {
            // Evict a tenth beyond the bound at once, least recently used first (ties by client id): deterministic.
            var excess = sessions.Count - _options.MaxSessions + (_options.MaxSessions / 10);
            var oldest = sessions.OrderBy(s => s.Value.LastIndex).ThenBy(s => s.Key, StringComparer.Ordinal).Take(excess).Select(s => s.Key).ToList();
            sessions = sessions.RemoveRange(oldest);
        }
        _sessions = sessions;
    }

    /// <summary>A read: an encoded <see cref="KvCommand"/> with the Get operation, or a <see cref="KvRangeQuery"/>.</summary>
    public ReadOnlyMemory<byte> Query(ReadOnlyMemory<byte> query)
    {
        if (!query.IsEmpty && query.Span[0] == KvRangeQuery.Format)
        {
            try
            {
                return Range(KvRangeQuery.Decode(query.Span)).Encode();
            }
            catch (FormatException)
            {
                return KvResult.Failed(KvError.Malformed, LastApplied.Value).Encode();
            }
        }
        KvCommand command;
        try
        {
            command = KvCommand.Decode(query.Span);
        }
        catch (FormatException)
        {
            return KvResult.Failed(KvError.Malformed, LastApplied.Value).Encode(); // bytes from a peer, never from this server's codec
        }
        return Read(command.Key, LastApplied.Value);
    }

    /// <summary>
    /// One page of the keys with the query's prefix, after its After key, in ordinal order. The prefix's keys are one run
    /// of the sorted keys, found by binary search at both ends: a page costs O(limit · log n) and the count O(log n),
    /// whatever the store's size.
    /// </summary>
    public KvRangeResult Range(KvRangeQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var items = _items;
        var first = items.Rank(query.Prefix);
        var end = EndOf(items, query.Prefix);
        if (query.CountOnly)
        {
            return new KvRangeResult([], end - first, false, LastApplied.Value);
        }
        // From the prefix's first key, or just after the After key when that is at or past the prefix.
        var fromAfter = query.After is { } after && string.CompareOrdinal(after, query.Prefix) >= 0;
        var start = fromAfter ? items.Rank(query.After!) + (items.TryGetValue(query.After!, out _) ? 1 : 0) : first;
        start = Math.Max(first, start);
        var stop = Math.Min(end, start + query.Limit);
        var page = new List<KvRangeItem>(Math.Max(0, stop - start));
        foreach (var (key, item) in fromAfter ? items.From(query.After!, inclusive: false) : items.From(query.Prefix))
        {
            if (page.Count >= stop - start)
            {
                break;
            }
            page.Add(new KvRangeItem(key, item.Text, item.Version));
        }
        return new KvRangeResult(page, end - first, stop < end, LastApplied.Value);
    }

    /// <summary>The position just past the last key that starts with <paramref name="prefix"/> (ordinal: UTF-16 code units).</summary>
    private static int EndOf(KvMap<KvItem> items, string prefix)
    {
        // Every key with the prefix sorts below the prefix with its last unit raised by one (dropping trailing maxima).
        var units = prefix.ToCharArray();
        for (var i = units.Length - 1; i >= 0; i--)
        {
            if (units[i] != char.MaxValue)
            {
                units[i]++;
                return items.Rank(new string(units, 0, i + 1));
            }
        }
        return items.Count;
    }

    private byte[] Read(string key, ulong index) =>
        _items.TryGetValue(key, out var item)
            ? KvResult.Encode(true, KvError.None, true, item.Value, true, item.Version, index)
            : KvResult.Encode(true, KvError.None, false, default, false, 0, index);

    /// <summary>
    /// A digest of the whole state (items and sessions) and the index it is at, equal on every node that applied the same
    /// log. Safe from any thread: it reads the state as of the last apply.
    /// </summary>
    public (ulong Digest, LogIndex Index) Digest()
    {
        Capture capture;
        lock (_gate)
        {
            capture = CaptureNow();
        }
        using var stream = new DigestStream();
        capture.WriteTo(stream);
        return (stream.Hash, capture.LastApplied);
    }

    public IStateMachineSnapshot CaptureSnapshot()
    {
        lock (_gate)
        {
            return CaptureNow();
        }
    }

    /// <summary>The state as it is now, frozen: the items' clone (this map copies what it shares from now on) and the immutable maps.</summary>
    private Capture CaptureNow() => new(_items.Clone(), _sessions, _leases, LastApplied);

    public void Restore(Stream snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        using var reader = new BinaryReader(snapshot, Encoding.UTF8, leaveOpen: true);
        var format = reader.ReadUInt32();
        if (format is not (SnapshotFormat or SnapshotFormatV2 or SnapshotFormatV1))
        {
            throw new StorageException("not a KV snapshot");
        }
        var lastApplied = new LogIndex(reader.ReadUInt64());
        var count = reader.ReadInt32();
        if (count < 0)
        {
            throw new StorageException($"a KV snapshot of {count} items");
        }
        // In the file's order, which is key order: the map is built bottom-up from it, its nodes full.
        var read = new List<KeyValuePair<string, KvItem>>(Math.Min(count, 1 << 20));
        for (var i = 0; i < count; i++)
        {
            var key = reader.ReadString();
            var value = ReadValue(reader);
            var version = reader.ReadUInt64();
            // A KVS1 snapshot did not keep create revisions: the last write stands for the creation (a lower bound is unknown).
            var created = format == SnapshotFormatV1 ? version : reader.ReadUInt64();
            read.Add(new(key, new KvItem(value, version, created, format == SnapshotFormat ? reader.ReadUInt64() : 0)));
        }
        KvMap<KvItem> items;
        try
        {
            items = KvMap<KvItem>.FromSorted(read);
        }
        catch (ArgumentException e)
        {
            throw new StorageException("a KV snapshot whose keys are not in order: " + e.Message, e);
        }
        var sessions = ImmutableDictionary.CreateBuilder<string, Session>(StringComparer.Ordinal);
        var sessionCount = reader.ReadInt32();
        for (var i = 0; i < sessionCount; i++)
        {
            var client = reader.ReadString();
            var sequence = reader.ReadUInt64();
            var lastIndex = reader.ReadUInt64();
            sessions[client] = new Session(sequence, format == SnapshotFormatV1 ? ReadResult(reader).Encode() : reader.ReadBytes(reader.ReadInt32()), lastIndex);
        }
        var leases = new Dictionary<ulong, KvLease>();
        var leaseCount = format == SnapshotFormat ? reader.ReadInt32() : 0;
        for (var i = 0; i < leaseCount; i++)
        {
            var id = reader.ReadUInt64();
            leases[id] = KvLease.Granted(id, reader.ReadInt64());
        }
        // Each lease's keys are those of the items written with it (derived, not stored twice).
        foreach (var group in read.Where(i => i.Value.Lease != 0).GroupBy(i => i.Value.Lease))
        {
            if (!leases.TryGetValue(group.Key, out var lease))
            {
                throw new StorageException($"the snapshot's key '{group.First().Key}' names lease {group.Key}, which it does not hold");
            }
            leases[group.Key] = lease with { Keys = ImmutableSortedSet.CreateRange(StringComparer.Ordinal, group.Select(i => i.Key)) };
        }
        lock (_gate)
        {
            _items = items;
            _sessions = sessions.ToImmutable();
            _leases = leases.ToImmutableDictionary();
            LastApplied = lastApplied;
        }
        Publish();
        History.Reset(lastApplied.Value);
    }

    /// <summary>A value as <see cref="BinaryWriter.Write(string)"/> wrote it (a 7-bit length, then UTF-8), kept as its bytes.</summary>
    private static byte[] ReadValue(BinaryReader reader)
    {
        var length = reader.Read7BitEncodedInt();
        var bytes = reader.ReadBytes(length);
        if (bytes.Length != length)
        {
            throw new EndOfStreamException("a KV snapshot cut short inside a value");
        }
        return bytes;
    }

    private static KvResult ReadResult(BinaryReader reader)
    {
        var ok = reader.ReadBoolean();
        var error = (KvError)reader.ReadByte();
        var found = reader.ReadBoolean();
        var value = reader.ReadBoolean() ? reader.ReadString() : null;
        return new KvResult(ok, error, found, value, reader.ReadUInt64(), reader.ReadUInt64());
    }

    /// <summary>A session: the last sequence number applied, its answer as the client got it (a KV or transaction result), and when it was last used.</summary>
    private sealed record Session(ulong Sequence, byte[] Answer, ulong LastIndex);

    /// <summary>
    /// The state at one index, frozen (a clone of the items that nobody changes, and the immutable maps); written out off
    /// the loop, in key order.
    /// </summary>
    private sealed class Capture(KvMap<KvItem> items, ImmutableDictionary<string, Session> sessions,
        ImmutableDictionary<ulong, KvLease> leases, LogIndex lastApplied) : IStateMachineSnapshot
    {
        public LogIndex LastApplied => lastApplied;

        public void WriteTo(Stream destination)
        {
            using var writer = new BinaryWriter(destination, Encoding.UTF8, leaveOpen: true);
            writer.Write(SnapshotFormat);
            writer.Write(lastApplied.Value);
            writer.Write(items.Count);
            var written = 0;
            foreach (var (key, item) in items.All())
            {
                writer.Write(key);
                // As BinaryWriter.Write(string) writes a string: the same bytes as when the store kept strings.
                writer.Write7BitEncodedInt(item.Value.Length);
                writer.Write(item.Value);
                writer.Write(item.Version);
                writer.Write(item.CreateRevision);
                writer.Write(item.Lease);
                written++;
            }
            Invariant.Assert(written == items.Count, $"the map counts {items.Count} items and holds {written}");
            writer.Write(sessions.Count);
            foreach (var (client, session) in sessions.OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                writer.Write(client);
                writer.Write(session.Sequence);
                writer.Write(session.LastIndex);
                writer.Write(session.Answer.Length);
                writer.Write(session.Answer);
            }
            writer.Write(leases.Count);
            foreach (var (id, lease) in leases.OrderBy(l => l.Key))
            {
                writer.Write(id);
                writer.Write(lease.TtlSeconds);
            }
        }
    }

    /// <summary>A write-only stream that hashes what is written (for <see cref="Digest"/>).</summary>
    private sealed class DigestStream : Stream
    {
        private readonly System.IO.Hashing.XxHash64 _hash = new();

        public ulong Hash => _hash.GetCurrentHashAsUInt64();

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => 0;

        public override long Position { get => 0; set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => _hash.Append(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer) => _hash.Append(buffer);

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
