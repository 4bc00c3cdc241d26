using System.Buffers.Binary;
using System.Text;

namespace RaftKv.StateMachine;

/// <summary>
/// A listing of the keys that start with <see cref="Prefix"/> (all keys for ""), in ordinal key order, after the key
/// <see cref="After"/> (exclusive; null: from the first), at most <see cref="Limit"/> of them; with
/// <see cref="CountOnly"/>, only how many keys have the prefix. A query, never a log entry.
/// <code>
/// format:u8=2 countOnly:u8 limit:i32 prefix after   (strings: length:i32 + UTF-8, -1 = none)
/// </code>
/// </summary>
public sealed record KvRangeQuery(string Prefix, string? After, int Limit, bool CountOnly = false)
{
    public const byte Format = 2;

    /// <summary>The most keys one page holds, and the default.</summary>
    public const int MaxLimit = 1_000;

    public byte[] Encode()
    {
        var buffer = new byte[2 + 4 + KvCodec.Size(Prefix) + KvCodec.Size(After)];
        var span = buffer.AsSpan();
        span[0] = Format;
        span[1] = CountOnly ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteInt32LittleEndian(span[2..], Limit);
        var offset = 6;
        offset += KvCodec.WriteString(span[offset..], Prefix);
        KvCodec.WriteString(span[offset..], After);
        return buffer;
    }

    /// <summary>Decodes <see cref="Encode"/>'s bytes; throws <see cref="FormatException"/> for anything else.</summary>
    public static KvRangeQuery Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < 6 || data[0] != Format || data[1] > 1)
        {
            throw new FormatException("not a KV range query");
        }
        var limit = BinaryPrimitives.ReadInt32LittleEndian(data[2..]);
        if (limit is < 1 or > MaxLimit)
        {
            throw new FormatException($"a range limit of {limit} is outside [1, {MaxLimit}]");
        }
        var offset = 6;
        var prefix = KvCodec.ReadString(data, ref offset) ?? throw new FormatException("a range query without a prefix");
        var after = KvCodec.ReadString(data, ref offset);
        if (offset != data.Length)
        {
            throw new FormatException("trailing bytes after a KV range query");
        }
        return new KvRangeQuery(prefix, after, limit, data[1] == 1);
    }
}

/// <summary>
/// A page of a listing: the keys with their values and versions, how many keys have the prefix in all, whether more
/// follow this page (ask again with After = the last key), and the index the store was at.
/// <code>
/// format:u8=2 more:u8 count:i32 index:u64 n:i32 (key value version:u64)*n
/// </code>
/// </summary>
public sealed record KvRangeResult(IReadOnlyList<KvRangeItem> Items, int Count, bool More, ulong Index)
{
    public byte[] Encode()
    {
        var size = 2 + 4 + 8 + 4 + Items.Sum(i => KvCodec.Size(i.Key) + KvCodec.Size(i.Value) + 8);
        var buffer = new byte[size];
        var span = buffer.AsSpan();
        span[0] = KvRangeQuery.Format;
        span[1] = More ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteInt32LittleEndian(span[2..], Count);
        BinaryPrimitives.WriteUInt64LittleEndian(span[6..], Index);
        BinaryPrimitives.WriteInt32LittleEndian(span[14..], Items.Count);
        var offset = 18;
        foreach (var item in Items)
        {
            offset += KvCodec.WriteString(span[offset..], item.Key);
            offset += KvCodec.WriteString(span[offset..], item.Value);
            BinaryPrimitives.WriteUInt64LittleEndian(span[offset..], item.Version);
            offset += 8;
        }
        return buffer;
    }

    public static KvRangeResult Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < 18 || data[0] != KvRangeQuery.Format || data[1] > 1)
        {
            throw new FormatException("not a KV range result");
        }
        var count = BinaryPrimitives.ReadInt32LittleEndian(data[2..]);
        var index = BinaryPrimitives.ReadUInt64LittleEndian(data[6..]);
        var n = BinaryPrimitives.ReadInt32LittleEndian(data[14..]);
        if (n < 0 || n > KvRangeQuery.MaxLimit || count < 0)
        {
            throw new FormatException("a KV range result of the wrong size");
        }
        var offset = 18;
        var items = new List<KvRangeItem>(n);
        for (var i = 0; i < n; i++)
        {
            var key = KvCodec.ReadString(data, ref offset) ?? throw new FormatException("a range item without a key");
            var value = KvCodec.ReadString(data, ref offset) ?? throw new FormatException("a range item without a value");
            if (offset + 8 > data.Length)
            {
                throw new FormatException("truncated KV range result");
            }
            items.Add(new KvRangeItem(key, value, BinaryPrimitives.ReadUInt64LittleEndian(data[offset..])));
            offset += 8;
        }
        if (offset != data.Length)
        {
            throw new FormatException("trailing bytes after a KV range result");
        }
        return new KvRangeResult(items, count, data[1] == 1, index);
    }
}

public sealed record KvRangeItem(string Key, string Value, ulong Version);

/// <summary>The strings of the KV codecs: length:i32 + UTF-8, -1 for none.</summary>
internal static class KvCodec
{
    public static int Size(string? text) => 4 + (text is null ? 0 : Encoding.UTF8.GetByteCount(text));

    public static int WriteString(Span<byte> destination, string? text)
    {
        if (text is null)
        {
            BinaryPrimitives.WriteInt32LittleEndian(destination, -1);
            return 4;
        }
        var length = Encoding.UTF8.GetBytes(text, destination[4..]);
        BinaryPrimitives.WriteInt32LittleEndian(destination, length);
        return 4 + length;
    }

    public static string? ReadString(ReadOnlySpan<byte> data, ref int offset) =>
        ReadBytes(data, ref offset, out var bytes) ? Encoding.UTF8.GetString(bytes) : null;

    /// <summary>A string's UTF-8 bytes, a slice of <paramref name="data"/>; false for none.</summary>
    public static bool ReadBytes(ReadOnlySpan<byte> data, scoped ref int offset, out ReadOnlySpan<byte> bytes)
    {
        if (offset + 4 > data.Length)
        {
            throw new FormatException("truncated KV bytes");
        }
        var length = BinaryPrimitives.ReadInt32LittleEndian(data[offset..]);
        offset += 4;
        if (length == -1)
        {
            bytes = default;
            return false;
        }
        if (length < 0 || offset + length > data.Length)
        {
            throw new FormatException("truncated KV bytes");
        }
        bytes = data.Slice(offset, length);
        offset += length;
        return true;
    }
}
