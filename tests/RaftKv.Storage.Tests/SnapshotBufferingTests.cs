using RaftKv.RaftCore;
using RaftKv.Testing;

namespace RaftKv.Storage.Tests;

/// <summary>
/// A state machine streams a snapshot a few bytes per call (a BinaryWriter or BinaryReader call per field). The snapshot
/// store gathers them: at 1M keys, one file write or read per field was 6 to 7 million system calls each way, which made
/// writing and loading a snapshot take seconds longer than encoding and decoding it.
/// </summary>
public sealed class SnapshotBufferingTests
{
    private static readonly SnapshotMetadata Meta = new(new LogIndex(500), new Term(3), ClusterConfig.Create([new NodeId(1)]));

    [Fact]
    public void A_snapshot_written_and_read_a_few_bytes_at_a_time_round_trips_in_few_file_calls()
    {
        var disk = new CountingFileSystem(new SimFileSystem());
        var store = new FileSnapshotStore(disk);
        var random = new Random(7);
        var expected = new MemoryStream();
        using (var writer = store.Create(Meta))
        {
            // 200,000 small writes (1 to 12 bytes), with a few larger than any buffer among them.
            for (var i = 0; i < 200_000; i++)
            {
                var piece = new byte[i % 50_000 == 49_999 ? 300_000 : random.Next(1, 13)];
                random.NextBytes(piece);
                writer.Stream.Write(piece);
                expected.Write(piece);
            }
            writer.Commit();
        }
        var writes = disk.Writes;

        using var stream = new FileSnapshotStore(disk).OpenRead(Meta);
        var reads = disk.Reads;
        var actual = new MemoryStream();
        var field = new byte[9];
        int read;
        while ((read = stream.Read(field, 0, random.Next(1, field.Length))) > 0)
        {
            actual.Write(field, 0, read);
        }

        actual.ToArray().Should().Equal(expected.ToArray());
        var size = expected.Length;
        writes.Should().BeLessThan((int)(size / 16_384) + 20, $"{size:N0} bytes in 200,000 calls are written a buffer at a time");
        (disk.Reads - reads).Should().BeLessThan((int)(size / 16_384) + 20, "and read a buffer at a time");
    }

    [Fact]
    public void A_write_failure_of_what_was_buffered_is_a_storage_failure_at_commit_and_nothing_becomes_current()
    {
        var inner = new SimFileSystem();
        var disk = new CountingFileSystem(inner);
        var store = new FileSnapshotStore(disk);
        using var writer = store.Create(Meta);
        writer.Stream.Write(new byte[100]);
        disk.FailWrites = true;

        var commit = writer.Commit;

        commit.Should().Throw<StorageException>().WithMessage("*.tmp*writing snapshot 500/3*");
        store.Latest.Should().BeNull();
    }

    /// <summary>Counts the file calls of the files it opens.</summary>
    private sealed class CountingFileSystem(IFileSystem inner) : IFileSystem
    {
        private int _writes;
        private int _reads;

        public int Writes => _writes;

        public int Reads => _reads;

        public bool FailWrites { get; set; }

        public IReadOnlyList<string> List(string directory) => inner.List(directory);

        public bool Exists(string path) => inner.Exists(path);

        public void CreateDirectory(string directory) => inner.CreateDirectory(directory);

        public IStorageFile Open(string path, bool create) => new CountingFile(inner.Open(path, create), this);

        public void Delete(string path) => inner.Delete(path);

        public void Rename(string from, string to) => inner.Rename(from, to);

        public void SyncDirectory(string directory) => inner.SyncDirectory(directory);

        private sealed class CountingFile(IStorageFile file, CountingFileSystem counts) : IStorageFile
        {
            public string Path => file.Path;

            public long Length => file.Length;

            public int Read(long offset, Span<byte> buffer)
            {
                Interlocked.Increment(ref counts._reads);
                return file.Read(offset, buffer);
            }

            public void Write(long offset, ReadOnlySpan<byte> data)
            {
                if (counts.FailWrites)
                {
                    throw new IOException("EIO (injected)");
                }
                Interlocked.Increment(ref counts._writes);
                file.Write(offset, data);
            }

            public void SetLength(long length) => file.SetLength(length);

            public void Sync() => file.Sync();

            public void Dispose() => file.Dispose();
        }
    }
}
