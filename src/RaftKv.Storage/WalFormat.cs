using System.Buffers;
using System.Buffers.Binary;
using System.IO.Hashing;
using RaftKv.RaftCore;

namespace RaftKv.Storage;

internal enum RecordType : byte
{
    /// <summary>First record of every segment: names its generation and the index it was started at.</summary>
    SegmentHeader = 1,

    Entry = 2,

    /// <summary>Closes a batch written with one write and one fsync. Records after the last commit record were never acknowledged.</summary>
    Commit = 3,
}

/// <summary>
/// The write-ahead log's record format (little-endian):
/// <code>
/// record  := payloadLength:u32  crc32c:u32  type:u8  reserved:u8[3]  payload
/// crc32c  covers type, reserved and payload (a damaged length moves the range it covers, so it fails too)
/// header  payload := "RKVWAL01"  generation:u32  firstIndex:u64
/// entry   payload := index:u64  term:u64  kind:u8  data
/// commit  payload := "RKVBATCH"  lastIndex:u64  entryCount:u32
/// </code>
/// </summary>
internal static class WalFormat
{
    public const int HeaderBytes = 12;
    public const int EntryPrefixBytes = 17;
    public const int SegmentHeaderPayloadBytes = 20;
    public const int CommitPayloadBytes = 20;

    public static ReadOnlySpan<byte> SegmentMagic => "RKVWAL01"u8;

    public static ReadOnlySpan<byte> CommitMagic => "RKVBATCH"u8;

    public static void WriteEntry(IBufferWriter<byte> output, LogEntry entry)
    {
        var payloadLength = EntryPrefixBytes + entry.Data.Length;
        var span = output.GetSpan(HeaderBytes + payloadLength)[..(HeaderBytes + payloadLength)];
        var payload = span[HeaderBytes..];
        BinaryPrimitives.WriteUInt64LittleEndian(payload, entry.Index.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(payload[8..], entry.Term.Value);
        payload[16] = (byte)entry.Kind;
        entry.Data.Span.CopyTo(payload[EntryPrefixBytes..]);
        Seal(span, RecordType.Entry, payloadLength);
        output.Advance(span.Length);
    }

    public static void WriteSegmentHeader(IBufferWriter<byte> output, uint generation, LogIndex firstIndex)
    {
        var span = output.GetSpan(HeaderBytes + SegmentHeaderPayloadBytes)[..(HeaderBytes + SegmentHeaderPayloadBytes)];
        var payload = span[HeaderBytes..];
        SegmentMagic.CopyTo(payload);
        BinaryPrimitives.WriteUInt32LittleEndian(payload[8..], generation);
        BinaryPrimitives.WriteUInt64LittleEndian(payload[12..], firstIndex.Value);
        Seal(span, RecordType.SegmentHeader, SegmentHeaderPayloadBytes);
        output.Advance(span.Length);
    }

    public static void WriteCommit(IBufferWriter<byte> output, LogIndex lastIndex, int entryCount)
    {
        var span = output.GetSpan(HeaderBytes + CommitPayloadBytes)[..(HeaderBytes + CommitPayloadBytes)];
        var payload = span[HeaderBytes..];
        CommitMagic.CopyTo(payload);
        BinaryPrimitives.WriteUInt64LittleEndian(payload[8..], lastIndex.Value);
        BinaryPrimitives.WriteUInt32LittleEndian(payload[16..], (uint)entryCount);
        Seal(span, RecordType.Commit, CommitPayloadBytes);
        output.Advance(span.Length);
    }

    private static void Seal(Span<byte> record, RecordType type, int payloadLength)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)payloadLength);
        record[8] = (byte)type;
        record[9] = record[10] = record[11] = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(record[4..], Checksum(record));
    }

    /// <summary>CRC32C of a record from its type byte to its end.</summary>
    public static uint Checksum(ReadOnlySpan<byte> record) => Crc32C.Compute(record[8..]);

    /// <summary>Parses the header at the start of <paramref name="buffer"/>; false if it cannot be a record.</summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> buffer, int maxPayloadBytes, out int payloadLength, out RecordType type)
    {
        payloadLength = 0;
        type = 0;
        if (buffer.Length < HeaderBytes)
        {
            return false;
        }
        var length = BinaryPrimitives.ReadUInt32LittleEndian(buffer);
        type = (RecordType)buffer[8];
        if (length > (uint)maxPayloadBytes || buffer[9] != 0 || buffer[10] != 0 || buffer[11] != 0
            || type is not (RecordType.SegmentHeader or RecordType.Entry or RecordType.Commit))
        {
            return false;
        }
        payloadLength = (int)length;
        return true;
    }

    public static bool ChecksumMatches(ReadOnlySpan<byte> record) =>
        BinaryPrimitives.ReadUInt32LittleEndian(record[4..]) == Checksum(record);
}

/// <summary>CRC-32C (Castagnoli) from System.IO.Hashing, over one or two spans.</summary>
internal static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data) => Crc32.HashToUInt32(Crc32ParameterSet.Crc32C, data);
}
