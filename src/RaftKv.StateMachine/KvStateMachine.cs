using System.Collections.Immutable;
using System.Text;
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
    }
}

/// <summary>
/// The replicated key-value map: key → (value, version = the index that last wrote it), plus exactly-once client
/// sessions (client id → last sequence applied and its answer). Apply is deterministic. The whole state is one
/// immutable value swapped after each apply, so a snapshot (or a digest, from any thread) captures it in O(1) and is
/// written out while applies go on.
/// Sessions assume one request in flight per client id, as with LogCabin and Dragonboat: a client numbers its writes
/// 1, 2, 3… and retries one with the same number until it gets an answer.
/// </summary>
public sealed class KvStateMachine : IStateMachine, IStateDigest
{
    private const uint SnapshotFormatV1 = 0x4B565331; // "KVS1": items without their create revision, sessions' answers as KV results
    private const uint SnapshotFormat = 0x4B565332; // "KVS2": items with their create revision, sessions' answers as their bytes
    private readonly KvOptions _options;
    private ImmutableDictionary<string, KvItem> _items = ImmutableDictionary.Create<string, KvItem>(StringComparer.Ordinal);
    private ImmutableDictionary<string, Session> _sessions = ImmutableDictionary.Create<string, Session>(StringComparer.Ordinal);

    // The keys in ordinal order, for listings: changed only when a key appears or goes, so a write to an existing key
    // pays nothing for it. Derived from the items (not in snapshots).
    private ImmutableSortedSet<string> _keys = ImmutableSortedSet.Create<string>(StringComparer.Ordinal);

    // What other threads may read: the state as of the last apply, as one immutable value.
    private Capture _published = new(ImmutableDictionary<string, KvItem>.Empty, ImmutableDictionary<string, Session>.Empty, LogIndex.Zero);

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
    public ulong Revision => Volatile.Read(ref _published).LastApplied.Value;

    public ReadOnlyMemory<byte> Apply(LogEntry entry)
    {
        Invariant.Assert(entry.Index > LastApplied, $"applied {entry.Index} after {LastApplied}");
        LastApplied = entry.Index;
        _changes.Clear();
        var answer = ApplyCommand(entry);
        Volatile.Write(ref _published, new Capture(_items, _sessions, LastApplied));
        History.Append(_changes);
        return answer;
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
                return Replayed(txn.ClientId, txn.Sequence, index) ?? Remember(txn.ClientId, txn.Sequence, index, Execute(txn, index).Encode());
            }
            var command = KvCommand.Decode(data);
            return Replayed(command.ClientId, command.Sequence, index) ?? Remember(command.ClientId, command.Sequence, index, Execute(command, index).Encode());
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

    /// <summary>A transaction: every comparison against the state before it, then one branch's operations in order.</summary>
    private KvTxnResult Execute(KvTxn txn, ulong index)
    {
        var succeeded = txn.Compare.All(Holds);
        var results = new List<KvTxnOpResult>();
        foreach (var op in succeeded ? txn.Success : txn.Failure)
        {
            _items.TryGetValue(op.Key, out var current);
            switch (op.Kind)
            {
                case KvTxnOpKind.Put:
                    var created = Put(op.Key, op.Value ?? "", index, current);
                    results.Add(new KvTxnOpResult(op.Kind, op.Key, true, null, index, created));
                    break;
                case KvTxnOpKind.Delete:
                    Remove(op.Key, current);
                    results.Add(new KvTxnOpResult(op.Kind, op.Key, current is not null, null, 0, 0));
                    break;
                default:
                    results.Add(new KvTxnOpResult(op.Kind, op.Key, current is not null, current?.Value, current?.Version ?? 0, current?.CreateRevision ?? 0));
                    break;
            }
        }
        return new KvTxnResult(succeeded, results, index);
    }

    private bool Holds(KvCompare compare)
    {
        _items.TryGetValue(compare.Key, out var current);
        if (compare.Target == KvCompareTarget.Value)
        {
            var equal = current is not null && current.Value == compare.Value;
            return compare.Op switch
            {
                KvCompareOp.Equal => equal,
                KvCompareOp.NotEqual => !equal,
                KvCompareOp.Less => current is not null && string.CompareOrdinal(current.Value, compare.Value) < 0,
                _ => current is not null && string.CompareOrdinal(current.Value, compare.Value) > 0,
            };
        }
        var actual = compare.Target switch
        {
            KvCompareTarget.Version => current?.Version ?? 0,
            KvCompareTarget.CreateRevision => current?.CreateRevision ?? 0,
            _ => current is null ? 0UL : 1UL,
        };
        return compare.Op switch
        {
            KvCompareOp.Equal => actual == compare.Number,
            KvCompareOp.NotEqual => actual != compare.Number,
            KvCompareOp.Less => actual < compare.Number,
            _ => actual > compare.Number,
        };
    }

    private KvResult Execute(KvCommand command, ulong index)
    {
        _items.TryGetValue(command.Key, out var current);
        switch (command.Operation)
        {
            case KvOperation.Set:
                Put(command.Key, command.Value ?? "", index, current);
                return new KvResult(true, KvError.None, true, command.Value, index, index);
            case KvOperation.Delete:
                Remove(command.Key, current);
                return new KvResult(true, KvError.None, current is not null, null, 0, index);
            case KvOperation.Cas:
                var matches = command.ExpectedVersion is { } version
                    ? (current?.Version ?? 0) == version
                    : command.Expected is null ? current is null : current?.Value == command.Expected;
                if (!matches)
                {
                    return KvResult.Failed(KvError.CasMismatch, index, current);
                }
                Put(command.Key, command.Value ?? "", index, current);
                return new KvResult(true, KvError.None, true, command.Value, index, index);
            default:
                return Read(command.Key, index);
        }
    }

    /// <summary>Writes a key; returns its create revision (this index for a new key).</summary>
    private ulong Put(string key, string value, ulong index, KvItem? current)
    {
        var created = current?.CreateRevision ?? index;
        _items = _items.SetItem(key, new KvItem(value, index, created));
        if (current is null)
        {
            _keys = _keys.Add(key);
        }
        _changes.Add(new WatchEvent(index, _changes.Count, WatchEventType.Put, key, value, current?.Value));
        return created;
    }

    private void Remove(string key, KvItem? current)
    {
        if (current is not null)
        {
            _items = _items.Remove(key);
            _keys = _keys.Remove(key);
            _changes.Add(new WatchEvent(LastApplied.Value, _changes.Count, WatchEventType.Delete, key, null, current.Value));
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
        return Read(command.Key, LastApplied.Value).Encode();
    }

    /// <summary>
    /// One page of the keys with the query's prefix, after its After key, in ordinal order. The prefix's keys are one run
    /// of the sorted keys, found by binary search at both ends: a page costs O(limit · log n) and the count O(log n),
    /// whatever the store's size.
    /// </summary>
    public KvRangeResult Range(KvRangeQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var keys = _keys;
        var first = StartOf(keys, query.Prefix);
        var end = EndOf(keys, query.Prefix);
        if (query.CountOnly)
        {
            return new KvRangeResult([], end - first, false, LastApplied.Value);
        }
        var start = first;
        if (query.After is { } after)
        {
            var at = keys.IndexOf(after);
            start = Math.Max(first, at >= 0 ? at + 1 : ~at);
        }
        var stop = Math.Min(end, start + query.Limit);
        var items = new List<KvRangeItem>(Math.Max(0, stop - start));
        for (var i = start; i < stop; i++)
        {
            var key = keys[i];
            var item = _items[key];
            items.Add(new KvRangeItem(key, item.Value, item.Version));
        }
        return new KvRangeResult(items, end - first, stop < end, LastApplied.Value);
    }

    /// <summary>The position of the first key at or after <paramref name="key"/>.</summary>
    private static int StartOf(ImmutableSortedSet<string> keys, string key)
    {
        var at = keys.IndexOf(key);
        return at >= 0 ? at : ~at;
    }

    /// <summary>The position just past the last key that starts with <paramref name="prefix"/> (ordinal: UTF-16 code units).</summary>
    private static int EndOf(ImmutableSortedSet<string> keys, string prefix)
    {
        // Every key with the prefix sorts below the prefix with its last unit raised by one (dropping trailing maxima).
        var units = prefix.ToCharArray();
        for (var i = units.Length - 1; i >= 0; i--)
        {
            if (units[i] != char.MaxValue)
            {
                units[i]++;
                return StartOf(keys, new string(units, 0, i + 1));
            }
        }
        return keys.Count;
    }

    private KvResult Read(string key, ulong index) =>
        _items.TryGetValue(key, out var item)
            ? new KvResult(true, KvError.None, true, item.Value, item.Version, index)
            : new KvResult(true, KvError.None, false, null, 0, index);

    /// <summary>
    /// A digest of the whole state (items and sessions) and the index it is at, equal on every node that applied the same
    /// log. Safe from any thread: it reads the state as of the last apply.
    /// </summary>
    public (ulong Digest, LogIndex Index) Digest()
    {
        var capture = Volatile.Read(ref _published);
        using var stream = new DigestStream();
        capture.WriteTo(stream);
        return (stream.Hash, capture.LastApplied);
    }

    public IStateMachineSnapshot CaptureSnapshot() => Volatile.Read(ref _published);

    public void Restore(Stream snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        using var reader = new BinaryReader(snapshot, Encoding.UTF8, leaveOpen: true);
        var format = reader.ReadUInt32();
        if (format is not (SnapshotFormat or SnapshotFormatV1))
        {
            throw new StorageException("not a KV snapshot");
        }
        var lastApplied = new LogIndex(reader.ReadUInt64());
        var items = ImmutableDictionary.CreateBuilder<string, KvItem>(StringComparer.Ordinal);
        var count = reader.ReadInt32();
        for (var i = 0; i < count; i++)
        {
            var key = reader.ReadString();
            var value = reader.ReadString();
            var version = reader.ReadUInt64();
            // A KVS1 snapshot did not keep create revisions: the last write stands for the creation (a lower bound is unknown).
            items[key] = new KvItem(value, version, format == SnapshotFormat ? reader.ReadUInt64() : version);
        }
        var sessions = ImmutableDictionary.CreateBuilder<string, Session>(StringComparer.Ordinal);
        var sessionCount = reader.ReadInt32();
        for (var i = 0; i < sessionCount; i++)
        {
            var client = reader.ReadString();
            var sequence = reader.ReadUInt64();
            var lastIndex = reader.ReadUInt64();
            sessions[client] = new Session(sequence, format == SnapshotFormat ? reader.ReadBytes(reader.ReadInt32()) : ReadResult(reader).Encode(), lastIndex);
        }
        _items = items.ToImmutable();
        _keys = ImmutableSortedSet.CreateRange(StringComparer.Ordinal, _items.Keys);
        _sessions = sessions.ToImmutable();
        LastApplied = lastApplied;
        Volatile.Write(ref _published, new Capture(_items, _sessions, LastApplied));
        History.Reset(lastApplied.Value);
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

    /// <summary>Immutable references to the maps at one index; written out off the loop, in key order.</summary>
    private sealed class Capture(ImmutableDictionary<string, KvItem> items, ImmutableDictionary<string, Session> sessions, LogIndex lastApplied)
        : IStateMachineSnapshot
    {
        public LogIndex LastApplied => lastApplied;

        public void WriteTo(Stream destination)
        {
            using var writer = new BinaryWriter(destination, Encoding.UTF8, leaveOpen: true);
            writer.Write(SnapshotFormat);
            writer.Write(lastApplied.Value);
            writer.Write(items.Count);
            foreach (var (key, item) in items.OrderBy(i => i.Key, StringComparer.Ordinal))
            {
                writer.Write(key);
                writer.Write(item.Value);
                writer.Write(item.Version);
                writer.Write(item.CreateRevision);
            }
            writer.Write(sessions.Count);
            foreach (var (client, session) in sessions.OrderBy(s => s.Key, StringComparer.Ordinal))
            {
                writer.Write(client);
                writer.Write(session.Sequence);
                writer.Write(session.LastIndex);
                writer.Write(session.Answer.Length);
                writer.Write(session.Answer);
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
