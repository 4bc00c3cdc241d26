using System.Buffers.Binary;

namespace RaftKv.StateMachine;

/// <summary>What a comparison of a transaction looks at.</summary>
public enum KvCompareTarget : byte
{
    /// <summary>The key's value (an absent key has none: = never holds, != always does).</summary>
    Value = 1,

    /// <summary>The index that last wrote the key (0: absent).</summary>
    Version = 2,

    /// <summary>The index that created the key, unchanged by later writes until it is deleted (0: absent).</summary>
    CreateRevision = 3,

    /// <summary>Whether the key exists: the operand is 1 (it does) or 0 (it does not); only = and !=.</summary>
    Exists = 4,
}

public enum KvCompareOp : byte
{
    Equal = 1,
    NotEqual = 2,
    Less = 3,
    Greater = 4,
}

public enum KvTxnOpKind : byte
{
    Get = 1,
    Put = 2,
    Delete = 3,
}

/// <summary>One comparison: <see cref="Target"/> of <see cref="Key"/> against <see cref="Value"/> (for Value) or <see cref="Number"/>.</summary>
public sealed record KvCompare(string Key, KvCompareTarget Target, KvCompareOp Op, string? Value, ulong Number);

/// <summary>One operation of a branch: read, write (with a lease, or 0 for none) or delete a key.</summary>
public sealed record KvTxnOp(KvTxnOpKind Kind, string Key, string? Value = null, ulong Lease = 0);

/// <summary>
/// A transaction (as etcd's): if every comparison holds, the <see cref="Success"/> operations run, else the
/// <see cref="Failure"/> ones, in order, as one log entry: atomic on every node. With a client id it is applied at most
/// once, like any write of a session.
/// <code>
/// format:u8=3 seq:u64 clientId n:i32 (key target:u8 op:u8 value number:u64)*n  n:i32 (kind:u8 key value [lease:u64])*n  n:i32 (…)*n
/// </code>
/// An operation's kind has its high bit set when a lease follows its value.
/// </summary>
public sealed record KvTxn(IReadOnlyList<KvCompare> Compare, IReadOnlyList<KvTxnOp> Success, IReadOnlyList<KvTxnOp> Failure,
    string? ClientId = null, ulong Sequence = 0)
{
    public const byte Format = 3;

    /// <summary>The most comparisons, and the most operations of each branch.</summary>
    public const int MaxOperations = 128;

    private const byte WithLease = 0x80;

    public byte[] Encode()
    {
        var size = 1 + 8 + KvCodec.Size(ClientId) + 12
            + Compare.Sum(c => KvCodec.Size(c.Key) + 2 + KvCodec.Size(c.Value) + 8)
            + Success.Concat(Failure).Sum(o => 1 + KvCodec.Size(o.Key) + KvCodec.Size(o.Value) + (o.Lease == 0 ? 0 : 8));
        var buffer = new byte[size];
        var span = buffer.AsSpan();
        span[0] = Format;
        BinaryPrimitives.WriteUInt64LittleEndian(span[1..], Sequence);
        var offset = 9 + KvCodec.WriteString(span[9..], ClientId);
        BinaryPrimitives.WriteInt32LittleEndian(span[offset..], Compare.Count);
        offset += 4;
        foreach (var compare in Compare)
        {
            offset += KvCodec.WriteString(span[offset..], compare.Key);
            span[offset++] = (byte)compare.Target;
            span[offset++] = (byte)compare.Op;
            offset += KvCodec.WriteString(span[offset..], compare.Value);
            BinaryPrimitives.WriteUInt64LittleEndian(span[offset..], compare.Number);
            offset += 8;
        }
        foreach (var branch in new[] { Success, Failure })
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[offset..], branch.Count);
            offset += 4;
            foreach (var op in branch)
            {
                span[offset++] = (byte)((byte)op.Kind | (op.Lease == 0 ? 0 : WithLease));
                offset += KvCodec.WriteString(span[offset..], op.Key);
                offset += KvCodec.WriteString(span[offset..], op.Value);
                if (op.Lease != 0)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(span[offset..], op.Lease);
                    offset += 8;
                }
            }
        }
        return buffer;
    }

    /// <summary>Decodes <see cref="Encode"/>'s bytes; throws <see cref="FormatException"/> for anything else.</summary>
    public static KvTxn Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < 9 || data[0] != Format)
        {
            throw new FormatException("not a KV transaction");
        }
        var sequence = BinaryPrimitives.ReadUInt64LittleEndian(data[1..]);
        var offset = 9;
        var clientId = KvCodec.ReadString(data, ref offset);
        var compares = new List<KvCompare>();
        var count = ReadCount(data, ref offset);
        for (var i = 0; i < count; i++)
        {
            var key = KvCodec.ReadString(data, ref offset) ?? throw new FormatException("a comparison without a key");
            if (offset + 2 > data.Length)
            {
                throw new FormatException("truncated KV transaction");
            }
            var target = data[offset++];
            var op = data[offset++];
            if (target is < 1 or > 4 || op is < 1 or > 4)
            {
                throw new FormatException("a comparison of an unknown kind");
            }
            var value = KvCodec.ReadString(data, ref offset);
            if (offset + 8 > data.Length)
            {
                throw new FormatException("truncated KV transaction");
            }
            compares.Add(new KvCompare(key, (KvCompareTarget)target, (KvCompareOp)op, value, BinaryPrimitives.ReadUInt64LittleEndian(data[offset..])));
            offset += 8;
        }
        var success = ReadBranch(data, ref offset);
        var failure = ReadBranch(data, ref offset);
        if (offset != data.Length)
        {
            throw new FormatException("trailing bytes after a KV transaction");
        }
        return new KvTxn(compares, success, failure, clientId, sequence);
    }

    private static int ReadCount(ReadOnlySpan<byte> data, ref int offset)
    {
        if (offset + 4 > data.Length)
        {
            throw new FormatException("truncated KV transaction");
        }
        var count = BinaryPrimitives.ReadInt32LittleEndian(data[offset..]);
        offset += 4;
        if (count is < 0 or > MaxOperations)
        {
            throw new FormatException($"a transaction part of {count} items (at most {MaxOperations})");
        }
        return count;
    }

    private static List<KvTxnOp> ReadBranch(ReadOnlySpan<byte> data, ref int offset)
    {
        var count = ReadCount(data, ref offset);
        var ops = new List<KvTxnOp>(count);
        for (var i = 0; i < count; i++)
        {
            if (offset >= data.Length || (data[offset] & ~WithLease) is < 1 or > 3)
            {
                throw new FormatException("an operation of an unknown kind");
            }
            var hasLease = (data[offset] & WithLease) != 0;
            var kind = (KvTxnOpKind)(data[offset++] & ~WithLease);
            var key = KvCodec.ReadString(data, ref offset) ?? throw new FormatException("an operation without a key");
            var value = KvCodec.ReadString(data, ref offset);
            var lease = 0UL;
            if (hasLease)
            {
                if (offset + 8 > data.Length)
                {
                    throw new FormatException("truncated KV transaction");
                }
                lease = BinaryPrimitives.ReadUInt64LittleEndian(data[offset..]);
                offset += 8;
            }
            ops.Add(new KvTxnOp(kind, key, value, lease));
        }
        return ops;
    }
}

/// <summary>What one operation of the branch that ran saw or did.</summary>
public sealed record KvTxnOpResult(KvTxnOpKind Kind, string Key, bool Found, string? Value, ulong Version, ulong CreateRevision);

/// <summary>
/// A transaction's answer: whether the comparisons held, each operation's result, and the transaction's index.
/// <code>
/// format:u8=3 succeeded:u8 index:u64 n:i32 (kind:u8 key found:u8 value version:u64 created:u64)*n
/// </code>
/// </summary>
public sealed record KvTxnResult(bool Succeeded, IReadOnlyList<KvTxnOpResult> Results, ulong Index)
{
    public byte[] Encode()
    {
        var buffer = new byte[14 + Results.Sum(r => 1 + KvCodec.Size(r.Key) + 1 + KvCodec.Size(r.Value) + 16)];
        var span = buffer.AsSpan();
        span[0] = KvTxn.Format;
        span[1] = Succeeded ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt64LittleEndian(span[2..], Index);
        BinaryPrimitives.WriteInt32LittleEndian(span[10..], Results.Count);
        var offset = 14;
        foreach (var result in Results)
        {
            span[offset++] = (byte)result.Kind;
            offset += KvCodec.WriteString(span[offset..], result.Key);
            span[offset++] = result.Found ? (byte)1 : (byte)0;
            offset += KvCodec.WriteString(span[offset..], result.Value);
            BinaryPrimitives.WriteUInt64LittleEndian(span[offset..], result.Version);
            BinaryPrimitives.WriteUInt64LittleEndian(span[(offset + 8)..], result.CreateRevision);
            offset += 16;
        }
        return buffer;
    }

    public static KvTxnResult Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < 14 || data[0] != KvTxn.Format || data[1] > 1)
        {
            throw new FormatException("not a KV transaction result");
        }
        var index = BinaryPrimitives.ReadUInt64LittleEndian(data[2..]);
        var count = BinaryPrimitives.ReadInt32LittleEndian(data[10..]);
        if (count is < 0 or > KvTxn.MaxOperations)
        {
            throw new FormatException("a transaction result of the wrong size");
        }
        var offset = 14;
        var results = new List<KvTxnOpResult>(count);
        for (var i = 0; i < count; i++)
        {
            if (offset >= data.Length || data[offset] is < 1 or > 3)
            {
                throw new FormatException("a transaction result of an unknown kind");
            }
            var kind = (KvTxnOpKind)data[offset++];
            var key = KvCodec.ReadString(data, ref offset) ?? throw new FormatException("a transaction result without a key");
            if (offset >= data.Length)
            {
                throw new FormatException("truncated KV transaction result");
            }
            var found = data[offset++] == 1;
            var value = KvCodec.ReadString(data, ref offset);
            if (offset + 16 > data.Length)
            {
                throw new FormatException("truncated KV transaction result");
            }
            results.Add(new KvTxnOpResult(kind, key, found, value, BinaryPrimitives.ReadUInt64LittleEndian(data[offset..]),
                BinaryPrimitives.ReadUInt64LittleEndian(data[(offset + 8)..])));
            offset += 16;
        }
        if (offset != data.Length)
        {
            throw new FormatException("trailing bytes after a KV transaction result");
        }
        return new KvTxnResult(data[1] == 1, results, index);
    }
}
