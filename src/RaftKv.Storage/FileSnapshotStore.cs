using System.Buffers.Binary;
using System.Globalization;
using System.IO.Hashing;
using RaftKv.RaftCore;

namespace RaftKv.Storage;

/// <summary>
/// Snapshot files in <c>snapshots/</c>, named <c>{index}-{term}.snap</c>:
/// <code>
/// "RKVSNAP1"  index:u64  term:u64  configLength:u32  config  data...  dataLength:u64  crc32c:u32  "RKVSNEND"
/// </code>
/// The CRC32C covers everything before it. A snapshot is written as a stream into a <c>.tmp</c> file, fsynced, renamed,
/// and the directory fsynced; only then is it visible. The newest <see cref="StorageOptions.SnapshotsToKeep"/> are kept.
/// Thread-safe: snapshots are written off the node loop while it reads others.
/// </summary>
public sealed class FileSnapshotStore : ISnapshotStore
{
    public const string Directory = "snapshots";
    private const int FooterBytes = 8 + 4 + 8;
    // Snapshot files are read and written through a buffer of this size (one pwrite or pread per buffer, not per field).
    private const int BufferBytes = 1 << 16; // under the large object heap's 85,000 bytes

    private readonly IFileSystem _files;
    private readonly int _keep;
    private readonly Lock _lock = new();
    private readonly SortedDictionary<(ulong Index, ulong Term), SnapshotMetadata> _complete = [];
    private int _writers;

    private static ReadOnlySpan<byte> HeadMagic => "RKVSNAP1"u8;

    private static ReadOnlySpan<byte> TailMagic => "RKVSNEND"u8;

    public FileSnapshotStore(IFileSystem files, StorageOptions? options = null)
    {
        _files = files ?? throw new ArgumentNullException(nameof(files));
        _keep = (options ?? new StorageOptions()).SnapshotsToKeep;
        _files.CreateDirectory(Directory);
        foreach (var name in _files.List(Directory))
        {
            var path = Path.Combine(Directory, name);
            if (name.EndsWith(".tmp", StringComparison.Ordinal))
            {
                _files.Delete(path); // never committed
                continue;
            }
            if (name.EndsWith(".snap", StringComparison.Ordinal))
            {
                var metadata = ReadMetadata(path);
                _complete[(metadata.Index.Value, metadata.Term.Value)] = metadata;
            }
        }
    }

    public SnapshotMetadata? Latest
    {
        get
        {
            lock (_lock)
            {
                return _complete.Count == 0 ? null : _complete.Last().Value;
            }
        }
    }

    public IReadOnlyList<SnapshotMetadata> All
    {
        get
        {
            lock (_lock)
            {
                return [.. _complete.Values];
            }
        }
    }

    public ISnapshotWriter Create(SnapshotMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        return new Writer(this, metadata);
    }

    /// <summary>Checks the whole file's checksum, then returns a stream over the state machine's bytes.</summary>
    public Stream OpenRead(SnapshotMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var path = PathOf(metadata);
        IStorageFile file;
        try
        {
            file = _files.Open(path, create: false);
        }
        catch (IOException error)
        {
            throw new StorageException($"{path}: cannot open snapshot {metadata.Index.Value}/{metadata.Term.Value}: {error.Message}", error);
        }
        try
        {
            var (dataStart, dataLength) = Verify(file, path);
            return Buffered(new FileSliceStream(file, dataStart, dataLength));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// A state machine reads a snapshot a few bytes at a time (a BinaryReader call per field): buffered, one read of the
    /// file serves thousands of them instead of one pread each.
    /// </summary>
    private static BufferedStream Buffered(Stream slice) => new(slice, BufferBytes);

    /// <summary>The size of a stored snapshot in bytes.</summary>
    public long SizeOf(SnapshotMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        using var file = _files.Open(PathOf(metadata), create: false);
        return file.Length;
    }

    private static string PathOf(SnapshotMetadata metadata) =>
        Path.Combine(Directory, metadata.Index.Value.ToString("D20", CultureInfo.InvariantCulture) + "-" + metadata.Term.Value.ToString("D20", CultureInfo.InvariantCulture) + ".snap");

    private SnapshotMetadata ReadMetadata(string path) => ReadMetadata(_files, path);

    /// <summary>
    /// A snapshot file anywhere (a backup): its metadata, and its state bytes once the whole file's checksum is verified.
    /// Throws <see cref="StorageException"/> naming the file if it is not a complete, undamaged snapshot.
    /// </summary>
    public static (SnapshotMetadata Metadata, Stream Data) OpenFile(IFileSystem files, string path)
    {
        ArgumentNullException.ThrowIfNull(files);
        var metadata = ReadMetadata(files, path);
        var file = files.Open(path, create: false);
        try
        {
            var (dataStart, dataLength) = Verify(file, path);
            return (metadata, Buffered(new FileSliceStream(file, dataStart, dataLength)));
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>Where a snapshot of <paramref name="metadata"/> is stored, relative to the store's file system.</summary>
    public static string PathFor(SnapshotMetadata metadata) => PathOf(metadata);

    private static SnapshotMetadata ReadMetadata(IFileSystem files, string path)
    {
        using var file = files.Open(path, create: false);
        var header = new byte[8 + 8 + 8 + 4];
        if (file.Read(0, header) != header.Length || !header.AsSpan(0, 8).SequenceEqual(HeadMagic))
        {
            throw new StorageException($"{path}: not a snapshot file (bad header at offset 0)");
        }
        var configLength = BinaryPrimitives.ReadInt32LittleEndian(header.AsSpan(24));
        if (configLength is < 0 or > 1024 * 1024 || header.Length + configLength + FooterBytes > file.Length)
        {
            throw new StorageException($"{path}: damaged snapshot header (configuration of {configLength} bytes)");
        }
        var config = new byte[configLength];
        file.Read(header.Length, config);
        Span<byte> tail = stackalloc byte[8];
        file.Read(file.Length - 8, tail);
        if (!tail.SequenceEqual(TailMagic))
        {
            throw new StorageException($"{path}: snapshot has no end marker at offset {file.Length - 8}: it is damaged");
        }
        try
        {
            return new SnapshotMetadata(
                new LogIndex(BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(8))),
                new Term(BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(16))),
                ClusterConfig.Decode(config));
        }
        catch (FormatException error)
        {
            throw new StorageException($"{path}: damaged configuration in the snapshot header: {error.Message}", error);
        }
    }

    private static (long DataStart, long DataLength) Verify(IStorageFile file, string path)
    {
        var length = file.Length;
        if (length < FooterBytes + 28)
        {
            throw new StorageException($"{path}: snapshot of {length} bytes is too short");
        }
        Span<byte> footer = stackalloc byte[FooterBytes];
        file.Read(length - FooterBytes, footer);
        var dataLength = BinaryPrimitives.ReadInt64LittleEndian(footer);
        var expected = BinaryPrimitives.ReadUInt32LittleEndian(footer[8..]);
        var crc = new Crc32(Crc32ParameterSet.Crc32C);
        var buffer = new byte[1024 * 1024];
        for (long offset = 0; offset < length - FooterBytes + 8;)
        {
            var count = (int)Math.Min(buffer.Length, length - FooterBytes + 8 - offset);
            file.Read(offset, buffer.AsSpan(0, count));
            crc.Append(buffer.AsSpan(0, count));
            offset += count;
        }
        if (crc.GetCurrentHashAsUInt32() != expected || !footer[12..].SequenceEqual(TailMagic))
        {
            throw new StorageException($"{path}: snapshot checksum does not match (footer at offset {length - FooterBytes}): it is damaged");
        }
        var dataStart = length - FooterBytes - dataLength;
        if (dataLength < 0 || dataStart < 28)
        {
            throw new StorageException($"{path}: snapshot footer names {dataLength} data bytes, which do not fit the file");
        }
        return (dataStart, dataLength);
    }

    private void Publish(SnapshotMetadata metadata, string temporary)
    {
        var path = PathOf(metadata);
        _files.Rename(temporary, path);
        _files.SyncDirectory(Directory);
        lock (_lock)
        {
            _complete[(metadata.Index.Value, metadata.Term.Value)] = metadata;
            while (_complete.Count > _keep)
            {
                var oldest = _complete.First();
                _complete.Remove(oldest.Key);
                _files.Delete(PathOf(oldest.Value));
            }
        }
    }

    /// <summary>
    /// Streams a snapshot into a temporary file, computing the checksum as it goes. Writes are gathered in a buffer of
    /// <see cref="BufferBytes"/> (a state machine writes a few bytes per call): one pwrite and one checksum update per
    /// buffer, not per field.
    /// </summary>
    private sealed class Writer : Stream, ISnapshotWriter
    {
        private readonly byte[] _buffer = new byte[BufferBytes];
        private int _buffered;
        private readonly FileSnapshotStore _store;
        private readonly SnapshotMetadata _metadata;
        private readonly IStorageFile _file;
        private readonly string _temporary;
        private readonly Crc32 _crc = new(Crc32ParameterSet.Crc32C);
        private readonly long _dataStart;
        private long _position;
        private bool _committed;

        public Writer(FileSnapshotStore store, SnapshotMetadata metadata)
        {
            _store = store;
            _metadata = metadata;
            _temporary = PathOf(metadata) + "." + Interlocked.Increment(ref store._writers).ToString(CultureInfo.InvariantCulture) + ".tmp";
            _file = store._files.Open(_temporary, create: true);
            var config = metadata.Config.Encode();
            var header = new byte[28 + config.Length];
            HeadMagic.CopyTo(header);
            BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(8), metadata.Index.Value);
            BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(16), metadata.Term.Value);
            BinaryPrimitives.WriteInt32LittleEndian(header.AsSpan(24), config.Length);
            config.CopyTo(header.AsSpan(28));
            Append(header);
            _dataStart = _position;
        }

        public Stream Stream => this;

        public void Commit()
        {
            try
            {
                FlushBuffer();
            }
            catch (IOException error)
            {
                throw new StorageException(
                    $"{_temporary}: writing snapshot {_metadata.Index.Value}/{_metadata.Term.Value} at offset {_position - _buffered} failed: {error.Message}", error);
            }
            Span<byte> footer = stackalloc byte[FooterBytes];
            BinaryPrimitives.WriteInt64LittleEndian(footer, _position - _dataStart);
            _crc.Append(footer[..8]);
            BinaryPrimitives.WriteUInt32LittleEndian(footer[8..], _crc.GetCurrentHashAsUInt32());
            TailMagic.CopyTo(footer[12..]);
            // A failed write or fsync is a storage failure (never retried): the node loop stops on StorageException.
            try
            {
                _file.Write(_position, footer);
                _file.Sync();
            }
            catch (IOException error)
            {
                throw new StorageException(
                    $"{_temporary}: writing the end of snapshot {_metadata.Index.Value}/{_metadata.Term.Value} at offset {_position} and fsyncing it failed: {error.Message}", error);
            }
            _file.Dispose();
            try
            {
                _store.Publish(_metadata, _temporary);
            }
            catch (IOException error)
            {
                throw new StorageException($"{PathOf(_metadata)}: making snapshot {_metadata.Index.Value}/{_metadata.Term.Value} current failed: {error.Message}", error);
            }
            _committed = true;
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer) => Append(buffer);

        private void Append(ReadOnlySpan<byte> data)
        {
            if (_buffered + data.Length > _buffer.Length)
            {
                FlushBuffer();
            }
            if (data.Length >= _buffer.Length)
            {
                _file.Write(_position, data);
                _crc.Append(data);
            }
            else
            {
                data.CopyTo(_buffer.AsSpan(_buffered));
                _buffered += data.Length;
            }
            _position += data.Length;
        }

        /// <summary>Writes what is buffered: it ends at <c>_position</c>.</summary>
        private void FlushBuffer()
        {
            if (_buffered == 0)
            {
                return;
            }
            var pending = _buffer.AsSpan(0, _buffered);
            _file.Write(_position - _buffered, pending);
            _crc.Append(pending);
            _buffered = 0;
        }

        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => _position;

        public override long Position
        {
            get => _position;
            set => throw new NotSupportedException();
        }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing && !_committed)
            {
                _file.Dispose();
                try
                {
                    _store._files.Delete(_temporary);
                }
                catch (IOException)
                {
                    // A leftover .tmp file is deleted at the next start.
                }
            }
            base.Dispose(disposing);
        }
    }

    /// <summary>A read-only stream over part of a file.</summary>
    private sealed class FileSliceStream(IStorageFile file, long start, long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => true;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position
        {
            get => _position;
            set => _position = Math.Clamp(value, 0, length);
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var count = (int)Math.Min(buffer.Length, length - _position);
            if (count <= 0)
            {
                return 0;
            }
            var read = file.Read(start + _position, buffer[..count]);
            _position += read;
            return read;
        }

        public override long Seek(long offset, SeekOrigin origin)
        {
            Position = origin switch
            {
                SeekOrigin.Begin => offset,
                SeekOrigin.Current => _position + offset,
                _ => length + offset,
            };
            return _position;
        }

        public override void Flush()
        {
        }

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                file.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
