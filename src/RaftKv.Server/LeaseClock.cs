using System.Buffers.Binary;
using System.Text;
using RaftKv.Hosting;
using RaftKv.RaftCore;
using RaftKv.StateMachine;

namespace RaftKv.Server;

/// <summary>
/// When each lease runs out, by this node's clock: not replicated, and acted on only while this node leads (as etcd's
/// lessor). The leases themselves (id, time to live, keys) are the replicated state's (<see cref="KvStateMachine.Leases"/>);
/// here each has a deadline. A lease seen for the first time gets its full time to live; a keepalive answered here restarts
/// it; and when this node starts to lead in a new term, every lease's countdown restarts at its full time to live, since
/// the keepalives the last leader took are not known here: a lease is never expired early, but may live up to one TTL
/// longer across a leader change. The leader's <see cref="LeaseExpiry"/> asks <see cref="Due"/> for the leases that ran
/// out and proposes their revocation as log entries, so every node deletes the same keys at the same index.
/// Keepalives and time-to-live questions come here through <see cref="IRaftNode.AskLeaderAsync"/> (the leader answers).
/// </summary>
internal sealed class LeaseClock(KvStateMachine store, TimeProvider time) : ILeaderRequestHandler
{
    /// <summary>The most keys a time-to-live answer lists (the count is always whole).</summary>
    public const int MaxListedKeys = 1_000;

    private readonly Lock _lock = new();
    private readonly Dictionary<ulong, long> _deadlines = [];
    private readonly HashSet<ulong> _expiring = [];
    private IReadOnlyDictionary<ulong, KvLease>? _seen;
    private Term _ledTerm;

    /// <summary>
    /// The leases that ran out and are not yet being revoked, at most <paramref name="max"/>, oldest deadline first; each is
    /// marked as expiring (keepalives are refused from now) until <see cref="RevokeEnded"/>. None unless this node leads.
    /// </summary>
    public IReadOnlyList<ulong> Due(bool leading, Term term, int max)
    {
        var now = time.GetTimestamp();
        lock (_lock)
        {
            var leases = Sync(now);
            if (!leading)
            {
                _ledTerm = Term.Zero;
                return [];
            }
            if (term != _ledTerm)
            {
                // A new term of leading: the last leader's keepalives are unknown here, so every countdown starts again.
                _ledTerm = term;
                foreach (var (id, lease) in leases)
                {
                    _deadlines[id] = Deadline(now, lease.TtlSeconds);
                }
                return [];
            }
            var due = _deadlines.Where(d => d.Value <= now && !_expiring.Contains(d.Key))
                .OrderBy(d => d.Value).ThenBy(d => d.Key).Take(max).Select(d => d.Key).ToList();
            _expiring.UnionWith(due);
            return due;
        }
    }

    /// <summary>A revocation proposed by <see cref="Due"/> ended: applied (the lease is gone) or not (it may be due again).</summary>
    public void RevokeEnded(ulong id)
    {
        lock (_lock)
        {
            _expiring.Remove(id);
        }
    }

    /// <summary>Restarts a lease's countdown: its time to live, or null if this node holds no such lease (or it is expiring).</summary>
    public long? KeepAlive(ulong id)
    {
        var now = time.GetTimestamp();
        lock (_lock)
        {
            var leases = Sync(now);
            if (!leases.TryGetValue(id, out var lease) || _expiring.Contains(id))
            {
                return null;
            }
            _deadlines[id] = Deadline(now, lease.TtlSeconds);
            return lease.TtlSeconds;
        }
    }

    /// <summary>A lease's time to live, the time left by this node's clock, and its keys; null if this node holds no such lease.</summary>
    public LeaseTimeToLive? TimeToLive(ulong id)
    {
        var now = time.GetTimestamp();
        lock (_lock)
        {
            var leases = Sync(now);
            if (!leases.TryGetValue(id, out var lease) || _expiring.Contains(id))
            {
                return null;
            }
            var left = time.GetElapsedTime(now, Math.Max(now, _deadlines[id]));
            return new LeaseTimeToLive(true, lease.TtlSeconds, (long)left.TotalMilliseconds, lease.Keys.Count, lease.Keys.Take(MaxListedKeys).ToList());
        }
    }

    public ValueTask<ReadOnlyMemory<byte>> HandleAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
    {
        var (operation, id) = LeaseAsk.Decode(request.Span);
        var answer = operation == LeaseAsk.KeepAlive
            ? KeepAlive(id) is { } ttl ? new LeaseTimeToLive(true, ttl, ttl * 1000, 0, []) : LeaseTimeToLive.NotFound
            : TimeToLive(id) ?? LeaseTimeToLive.NotFound;
        return ValueTask.FromResult<ReadOnlyMemory<byte>>(answer.Encode());
    }

    /// <summary>Follows the replicated leases: a new one gets its full time to live from now; a gone one is forgotten.</summary>
    private IReadOnlyDictionary<ulong, KvLease> Sync(long now)
    {
        var leases = store.Leases;
        if (ReferenceEquals(leases, _seen))
        {
            return leases;
        }
        _seen = leases;
        foreach (var id in _deadlines.Keys.Where(id => !leases.ContainsKey(id)).ToList())
        {
            _deadlines.Remove(id);
            _expiring.Remove(id);
        }
        foreach (var (id, lease) in leases)
        {
            _deadlines.TryAdd(id, Deadline(now, lease.TtlSeconds));
        }
        return leases;
    }

    private long Deadline(long now, long ttlSeconds) => now + (ttlSeconds * time.TimestampFrequency);
}

/// <summary>What a lease question asks of the leader: <c>format:u8=1 operation:u8 id:u64</c> (1 keepalive, 2 time to live).</summary>
internal static class LeaseAsk
{
    public const byte KeepAlive = 1;
    public const byte TimeToLive = 2;
    private const byte Format = 1;

    public static byte[] Encode(byte operation, ulong id)
    {
        var buffer = new byte[10];
        buffer[0] = Format;
        buffer[1] = operation;
        BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(2), id);
        return buffer;
    }

    public static (byte Operation, ulong Id) Decode(ReadOnlySpan<byte> data) =>
        data.Length == 10 && data[0] == Format && data[1] is KeepAlive or TimeToLive
            ? (data[1], BinaryPrimitives.ReadUInt64LittleEndian(data[2..]))
            : throw new FormatException("not a lease question");
}

/// <summary>
/// The leader's answer about a lease: whether it holds it, its time to live, the milliseconds left by the leader's clock,
/// how many keys it has and the first of them.
/// <code>
/// found:u8 ttlSeconds:i64 leftMs:i64 keyCount:i32 n:i32 (key)*n   (key: length:i32 + UTF-8)
/// </code>
/// </summary>
internal sealed record LeaseTimeToLive(bool Found, long TtlSeconds, long LeftMs, int KeyCount, IReadOnlyList<string> Keys)
{
    public static LeaseTimeToLive NotFound { get; } = new(false, 0, 0, 0, []);

    public byte[] Encode()
    {
        var buffer = new byte[1 + 8 + 8 + 4 + 4 + Keys.Sum(k => 4 + Encoding.UTF8.GetByteCount(k))];
        var span = buffer.AsSpan();
        span[0] = Found ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteInt64LittleEndian(span[1..], TtlSeconds);
        BinaryPrimitives.WriteInt64LittleEndian(span[9..], LeftMs);
        BinaryPrimitives.WriteInt32LittleEndian(span[17..], KeyCount);
        BinaryPrimitives.WriteInt32LittleEndian(span[21..], Keys.Count);
        var offset = 25;
        foreach (var key in Keys)
        {
            var length = Encoding.UTF8.GetBytes(key, span[(offset + 4)..]);
            BinaryPrimitives.WriteInt32LittleEndian(span[offset..], length);
            offset += 4 + length;
        }
        return buffer;
    }

    public static LeaseTimeToLive Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < 25 || data[0] > 1)
        {
            throw new FormatException("not a lease answer");
        }
        var count = BinaryPrimitives.ReadInt32LittleEndian(data[21..]);
        if (count is < 0 or > LeaseClock.MaxListedKeys)
        {
            throw new FormatException("a lease answer of the wrong size");
        }
        var keys = new List<string>(count);
        var offset = 25;
        for (var i = 0; i < count; i++)
        {
            var length = offset + 4 <= data.Length ? BinaryPrimitives.ReadInt32LittleEndian(data[offset..]) : -1;
            if (length < 0 || offset + 4 + length > data.Length)
            {
                throw new FormatException("a truncated lease answer");
            }
            keys.Add(Encoding.UTF8.GetString(data.Slice(offset + 4, length)));
            offset += 4 + length;
        }
        if (offset != data.Length)
        {
            throw new FormatException("trailing bytes after a lease answer");
        }
        return new LeaseTimeToLive(data[0] == 1, BinaryPrimitives.ReadInt64LittleEndian(data[1..]), BinaryPrimitives.ReadInt64LittleEndian(data[9..]),
            BinaryPrimitives.ReadInt32LittleEndian(data[17..]), keys);
    }
}
