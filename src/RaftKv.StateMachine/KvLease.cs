using System.Buffers.Binary;
using System.Collections.Immutable;

namespace RaftKv.StateMachine;

public enum KvLeaseOperation : byte
{
    /// <summary>A new lease of <see cref="KvLeaseCommand.TtlSeconds"/>; its id is the index of the entry that grants it.</summary>
    Grant = 1,

    /// <summary>Ends the lease and deletes every key written with it, at a client's request.</summary>
    Revoke = 2,

    /// <summary>
    /// The leader of <see cref="KvLeaseCommand.Term"/> found by its clock that the lease ran out: a revoke, applied only if
    /// the entry was appended in that term (by that leader). One forwarded to, or appended by, a leader of another term is
    /// ignored: only the leader that keeps a lease's countdown may end it.
    /// </summary>
    Expire = 3,
}

/// <summary>
/// A lease as the replicated state holds it: its id (the index that granted it), its time to live, and the keys written
/// with it. When it runs out is not replicated: the leader's clock decides and proposes a <see cref="KvLeaseOperation.Revoke"/>
/// (see the KV application's lease clock), so every node deletes the same keys at the same index.
/// </summary>
public sealed record KvLease(ulong Id, long TtlSeconds, ImmutableSortedSet<string> Keys)
{
    public static KvLease Granted(ulong id, long ttlSeconds) => new(id, ttlSeconds, ImmutableSortedSet.Create<string>(StringComparer.Ordinal));
}

/// <summary>
/// A lease's grant or revoke, as a log entry. With a client id it is applied at most once, like any write of a session.
/// <code>
/// format:u8=4 operation:u8 seq:u64 id:u64 ttlSeconds:i64 term:u64 clientId   (clientId: length:i32 + UTF-8, -1 = none)
/// </code>
/// </summary>
public sealed record KvLeaseCommand(KvLeaseOperation Operation, ulong Id, long TtlSeconds, string? ClientId = null, ulong Sequence = 0, ulong Term = 0)
{
    public const byte Format = 4;

    public static KvLeaseCommand Grant(long ttlSeconds, string? clientId = null, ulong sequence = 0) =>
        new(KvLeaseOperation.Grant, 0, ttlSeconds, clientId, sequence);

    public static KvLeaseCommand Revoke(ulong id, string? clientId = null, ulong sequence = 0) =>
        new(KvLeaseOperation.Revoke, id, 0, clientId, sequence);

    /// <summary>The expiry the leader of <paramref name="term"/> decided.</summary>
    public static KvLeaseCommand Expire(ulong id, ulong term) => new(KvLeaseOperation.Expire, id, 0, Term: term);

    public byte[] Encode()
    {
        var buffer = new byte[2 + 32 + KvCodec.Size(ClientId)];
        var span = buffer.AsSpan();
        span[0] = Format;
        span[1] = (byte)Operation;
        BinaryPrimitives.WriteUInt64LittleEndian(span[2..], Sequence);
        BinaryPrimitives.WriteUInt64LittleEndian(span[10..], Id);
        BinaryPrimitives.WriteInt64LittleEndian(span[18..], TtlSeconds);
        BinaryPrimitives.WriteUInt64LittleEndian(span[26..], Term);
        KvCodec.WriteString(span[34..], ClientId);
        return buffer;
    }

    /// <summary>Decodes <see cref="Encode"/>'s bytes; throws <see cref="FormatException"/> for anything else.</summary>
    public static KvLeaseCommand Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < 38 || data[0] != Format || data[1] is < 1 or > 3)
        {
            throw new FormatException("not a lease command");
        }
        var offset = 34;
        var clientId = KvCodec.ReadString(data, ref offset);
        if (offset != data.Length)
        {
            throw new FormatException("trailing bytes after a lease command");
        }
        return new KvLeaseCommand((KvLeaseOperation)data[1], BinaryPrimitives.ReadUInt64LittleEndian(data[10..]),
            BinaryPrimitives.ReadInt64LittleEndian(data[18..]), clientId, BinaryPrimitives.ReadUInt64LittleEndian(data[2..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[26..]));
    }
}

/// <summary>
/// A lease command's answer: the lease (its id and time to live), how many keys a revoke deleted, the entry's index; or
/// why not (<see cref="KvError.LeaseNotFound"/>, <see cref="KvError.TooManyLeases"/>, <see cref="KvError.StaleExpiry"/>).
/// <code>
/// format:u8=4 ok:u8 error:u8 id:u64 ttlSeconds:i64 deleted:i32 index:u64
/// </code>
/// </summary>
public sealed record KvLeaseResult(bool Ok, KvError Error, ulong Id, long TtlSeconds, int Deleted, ulong Index)
{
    private const int Bytes = 3 + 8 + 8 + 4 + 8;

    public byte[] Encode()
    {
        var buffer = new byte[Bytes];
        var span = buffer.AsSpan();
        span[0] = KvLeaseCommand.Format;
        span[1] = Ok ? (byte)1 : (byte)0;
        span[2] = (byte)Error;
        BinaryPrimitives.WriteUInt64LittleEndian(span[3..], Id);
        BinaryPrimitives.WriteInt64LittleEndian(span[11..], TtlSeconds);
        BinaryPrimitives.WriteInt32LittleEndian(span[19..], Deleted);
        BinaryPrimitives.WriteUInt64LittleEndian(span[23..], Index);
        return buffer;
    }

    public static KvLeaseResult Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length != Bytes || data[0] != KvLeaseCommand.Format || data[1] > 1 || data[2] > (byte)KvError.Last)
        {
            throw new FormatException("not a lease result");
        }
        return new KvLeaseResult(data[1] == 1, (KvError)data[2], BinaryPrimitives.ReadUInt64LittleEndian(data[3..]),
            BinaryPrimitives.ReadInt64LittleEndian(data[11..]), BinaryPrimitives.ReadInt32LittleEndian(data[19..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[23..]));
    }
}
