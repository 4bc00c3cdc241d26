using System.Buffers.Binary;
using RaftKv.RaftCore;

namespace RaftKv.Storage;

/// <summary>
/// What the log keeps beside its segments: the hard state (term, vote, commit), the log's base (the last entry compacted
/// away or replaced by an installed snapshot) and the segment generation in use. Replaced atomically: write a new file,
/// fsync it, rename it over the old one, fsync the directory.
/// </summary>
internal sealed record LogMeta(HardState HardState, LogIndex BaseIndex, Term BaseTerm, uint Generation)
{
    public const string FileName = "state";
    public const string TempFileName = "state" + DurableFile.TempSuffix;
    private const int Bytes = 8 + 4 + (8 * 5) + 4 + 4;

    private static ReadOnlySpan<byte> Magic => "RKVSTATE"u8;

    public static LogMeta Empty { get; } = new(HardState.Empty, LogIndex.Zero, Term.Zero, 1);

    /// <summary>Reads the meta file; null if there is none. A damaged file stops the node with its name.</summary>
    public static LogMeta? Read(IFileSystem files)
    {
        if (files.Exists(TempFileName))
        {
            files.Delete(TempFileName); // a replacement that never got renamed: the old file stands
        }
        if (!files.Exists(FileName))
        {
            return null;
        }
        using var file = files.Open(FileName, create: false);
        Span<byte> buffer = stackalloc byte[Bytes];
        var read = file.Read(0, buffer);
        if (read != Bytes || file.Length != Bytes || !buffer[..8].SequenceEqual(Magic)
            || BinaryPrimitives.ReadUInt32LittleEndian(buffer[^4..]) != Crc32C.Compute(buffer[..^4]))
        {
            throw new StorageException($"{file.Path}: damaged log state file ({file.Length} bytes, checksum or format does not match)");
        }
        var version = BinaryPrimitives.ReadUInt32LittleEndian(buffer[8..]);
        if (version != 1)
        {
            throw new StorageException($"{file.Path}: unknown format version {version}");
        }
        var fields = buffer[12..];
        return new LogMeta(
            new HardState(
                new Term(BinaryPrimitives.ReadUInt64LittleEndian(fields)),
                new NodeId(BinaryPrimitives.ReadUInt64LittleEndian(fields[8..])),
                new LogIndex(BinaryPrimitives.ReadUInt64LittleEndian(fields[16..]))),
            new LogIndex(BinaryPrimitives.ReadUInt64LittleEndian(fields[24..])),
            new Term(BinaryPrimitives.ReadUInt64LittleEndian(fields[32..])),
            BinaryPrimitives.ReadUInt32LittleEndian(fields[40..]));
    }

    public void Write(IFileSystem files)
    {
        Span<byte> buffer = stackalloc byte[Bytes];
        Magic.CopyTo(buffer);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer[8..], 1);
        var fields = buffer[12..];
        BinaryPrimitives.WriteUInt64LittleEndian(fields, HardState.Term.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(fields[8..], HardState.Vote.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(fields[16..], HardState.Commit.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(fields[24..], BaseIndex.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(fields[32..], BaseTerm.Value);
        BinaryPrimitives.WriteUInt32LittleEndian(fields[40..], Generation);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer[^4..], Crc32C.Compute(buffer[..^4]));
        DurableFile.Replace(files, FileName, buffer);
    }
}
