using System.Buffers.Binary;
using System.Text;

namespace RaftKv.StateMachine;

public enum KvOperation : byte
{
    Get = 1,
    Set = 2,
    Delete = 3,

    /// <summary>Compare-and-set: against the current value (<see cref="KvCommand.Expected"/>) or version (<see cref="KvCommand.ExpectedVersion"/>).</summary>
    Cas = 4,
}

/// <summary>
/// One client command, as stored in a log entry (writes) or run as a query (reads). A write that carries a client id and a
/// sequence number is applied at most once: a retry gets the saved answer (exactly-once client sessions).
/// <code>
/// format:u8=1 operation:u8 flags:u8 seq:u64 expectedVersion:u64 clientId key value expected [lease:u64]
/// </code>
/// Strings are length:i32 + UTF-8 (-1 = none); the lease is there when flags has bit 2 (a write attached to a lease,
/// <see cref="Lease"/>; 0 = none).
/// </summary>
public sealed record KvCommand(
    KvOperation Operation,
    string Key,
    string? Value = null,
    string? Expected = null,
    ulong? ExpectedVersion = null,
    string? ClientId = null,
    ulong Sequence = 0,
    ulong Lease = 0)
{
    private const byte Format = 1;
    private const byte HasExpectedVersion = 1;
    private const byte HasLease = 2;

    public bool IsWrite => Operation is not KvOperation.Get;

    public byte[] Encode()
    {
        var size = 3 + 8 + 8 + Size(ClientId) + Size(Key) + Size(Value) + Size(Expected) + (Lease == 0 ? 0 : 8);
        var buffer = new byte[size];
        var span = buffer.AsSpan();
        span[0] = Format;
        span[1] = (byte)Operation;
        span[2] = (byte)((ExpectedVersion is null ? 0 : HasExpectedVersion) | (Lease == 0 ? 0 : HasLease));
        BinaryPrimitives.WriteUInt64LittleEndian(span[3..], Sequence);
        BinaryPrimitives.WriteUInt64LittleEndian(span[11..], ExpectedVersion ?? 0);
        var offset = 19;
        offset += WriteString(span[offset..], ClientId);
        offset += WriteString(span[offset..], Key);
        offset += WriteString(span[offset..], Value);
        offset += WriteString(span[offset..], Expected);
        if (Lease != 0)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(span[offset..], Lease);
        }
        return buffer;
    }

    /// <summary>Decodes <see cref="Encode"/>'s bytes; throws <see cref="FormatException"/> for anything else.</summary>
    public static KvCommand Decode(ReadOnlySpan<byte> data)
    {
        var command = Decode(data, out var value, out var hasValue);
        return hasValue ? command with { Value = Encoding.UTF8.GetString(value) } : command;
    }

    /// <summary>
    /// Decodes as <see cref="Decode(ReadOnlySpan{byte})"/> but leaves the value as its UTF-8 bytes, a slice of
    /// <paramref name="data"/> (<see cref="Value"/> stays null): the store keeps values as bytes.
    /// </summary>
    internal static KvCommand Decode(ReadOnlySpan<byte> data, out ReadOnlySpan<byte> value, out bool hasValue)
    {
        if (data.Length < 19 || data[0] != Format || data[1] is < 1 or > 4)
        {
            throw new FormatException("not a KV command");
        }
        var operation = (KvOperation)data[1];
        var hasVersion = (data[2] & HasExpectedVersion) != 0;
        var sequence = BinaryPrimitives.ReadUInt64LittleEndian(data[3..]);
        var version = BinaryPrimitives.ReadUInt64LittleEndian(data[11..]);
        var offset = 19;
        var clientId = ReadString(data, ref offset);
        var key = ReadString(data, ref offset) ?? throw new FormatException("KV command without a key");
        try
        {
            hasValue = KvCodec.ReadBytes(data, ref offset, out value);
        }
        catch (FormatException)
        {
            throw new FormatException("truncated KV command");
        }
        var expected = ReadString(data, ref offset);
        var lease = 0UL;
        if ((data[2] & HasLease) != 0)
        {
            if (offset + 8 > data.Length)
            {
                throw new FormatException("truncated KV command");
            }
            lease = BinaryPrimitives.ReadUInt64LittleEndian(data[offset..]);
            offset += 8;
        }
        if (offset != data.Length)
        {
            throw new FormatException("trailing bytes after a KV command");
        }
        return new KvCommand(operation, key, null, expected, hasVersion ? version : null, clientId, sequence, lease);
    }

    private static int Size(string? text) => KvCodec.Size(text);

    private static int WriteString(Span<byte> destination, string? text) => KvCodec.WriteString(destination, text);

    private static string? ReadString(ReadOnlySpan<byte> data, ref int offset)
    {
        try
        {
            return KvCodec.ReadString(data, ref offset);
        }
        catch (FormatException)
        {
            throw new FormatException("truncated KV command");
        }
    }
}

public enum KvError
{
    None,

    /// <summary>A CAS found another value or version than the one expected; the result holds the current one.</summary>
    CasMismatch,

    /// <summary>A session's sequence number below the last one applied: the client moved on, the old answer is gone.</summary>
    StaleSequence,

    /// <summary>The log held bytes that are not a KV command (never written by this server).</summary>
    Malformed,

    /// <summary>A write named a lease, or a revoke a lease, that does not exist (never granted, expired or revoked).</summary>
    LeaseNotFound,

    /// <summary>A grant found as many leases as the store keeps (KvOptions.MaxLeases).</summary>
    TooManyLeases,

    /// <summary>An expiry appended in another term than that of the leader that decided it: ignored.</summary>
    StaleExpiry,

    /// <summary>The highest value, for decoders.</summary>
    Last = StaleExpiry,
}

/// <summary>The answer to a command. <see cref="Version"/> is the index that last wrote the key (0: absent).</summary>
/// <remarks>
/// It crosses the runtime as bytes (the runtime forwards answers between nodes without reading them):
/// <code>
/// format:u8=1 ok:u8 error:u8 found:u8 version:u64 index:u64 value   (value: length:i32 + UTF-8, -1 = none)
/// </code>
/// </remarks>
public sealed record KvResult(bool Ok, KvError Error, bool Found, string? Value, ulong Version, ulong Index)
{
    private const byte Format = 1;
    private const int HeadBytes = 4 + 8 + 8;

    public static KvResult Failed(KvError error, ulong index) => new(false, error, false, null, 0, index);

    public byte[] Encode()
    {
        var buffer = new byte[HeadBytes + 4 + (Value is null ? 0 : Encoding.UTF8.GetByteCount(Value))];
        var span = buffer.AsSpan();
        WriteHead(span, Ok, Error, Found, Version, Index);
        if (Value is null)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[HeadBytes..], -1);
        }
        else
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[HeadBytes..], Encoding.UTF8.GetBytes(Value, span[(HeadBytes + 4)..]));
        }
        return buffer;
    }

    /// <summary>
    /// The bytes <see cref="Encode()"/> would give for a result whose value is already UTF-8 (null: none), without turning
    /// it into a string and back: how the store answers.
    /// </summary>
    internal static byte[] Encode(bool ok, KvError error, bool found, ReadOnlySpan<byte> value, bool hasValue, ulong version, ulong index)
    {
        var buffer = new byte[HeadBytes + 4 + (hasValue ? value.Length : 0)];
        var span = buffer.AsSpan();
        WriteHead(span, ok, error, found, version, index);
        BinaryPrimitives.WriteInt32LittleEndian(span[HeadBytes..], hasValue ? value.Length : -1);
        value.CopyTo(span[(HeadBytes + 4)..]);
        return buffer;
    }

    /// <summary>A failure that shows the key's current value and version (a CAS that did not match).</summary>
    internal static byte[] Failed(KvError error, ulong index, in KvItem current) =>
        Encode(false, error, true, current.Value, true, current.Version, index);

    private static void WriteHead(Span<byte> span, bool ok, KvError error, bool found, ulong version, ulong index)
    {
        span[0] = Format;
        span[1] = ok ? (byte)1 : (byte)0;
        span[2] = (byte)error;
        span[3] = found ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt64LittleEndian(span[4..], version);
        BinaryPrimitives.WriteUInt64LittleEndian(span[12..], index);
    }

    /// <summary>Decodes <see cref="Encode()"/>'s bytes; throws <see cref="FormatException"/> for anything else.</summary>
    public static KvResult Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < HeadBytes + 4 || data[0] != Format || data[1] > 1 || data[2] > (byte)KvError.Last || data[3] > 1)
        {
            throw new FormatException("not a KV result");
        }
        var length = BinaryPrimitives.ReadInt32LittleEndian(data[HeadBytes..]);
        if (length < -1 || HeadBytes + 4 + Math.Max(length, 0) != data.Length)
        {
            throw new FormatException("a KV result of the wrong length");
        }
        var value = length < 0 ? null : Encoding.UTF8.GetString(data.Slice(HeadBytes + 4, length));
        return new KvResult(data[1] == 1, (KvError)data[2], data[3] == 1, value,
            BinaryPrimitives.ReadUInt64LittleEndian(data[4..]), BinaryPrimitives.ReadUInt64LittleEndian(data[12..]));
    }
}

/// <summary>
/// A stored value (UTF-8, as the command carried it), the index that last wrote it, the index that created it (kept until
/// the key is deleted), and the lease it was last written with (0: none; the key is deleted when that lease ends). A
/// struct, held in the map's leaves: no object per key beyond the value's bytes.
/// </summary>
internal readonly record struct KvItem(byte[] Value, ulong Version, ulong CreateRevision, ulong Lease)
{
    public string Text => Encoding.UTF8.GetString(Value);
}
