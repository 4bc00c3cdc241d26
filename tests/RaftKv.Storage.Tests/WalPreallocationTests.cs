using System.Text;
using RaftKv.RaftCore;
using RaftKv.Testing;

namespace RaftKv.Storage.Tests;

/// <summary>
/// Segments written with zeros before the log uses them (<see cref="StorageOptions.Preallocation"/>): batches overwrite
/// the zeros in place, and recovery tells the zeros never written from a torn tail.
/// </summary>
public sealed class WalPreallocationTests : IDisposable
{
    private const int SegmentBytes = 4096;

    private static readonly StorageOptions Inline = new() { SegmentBytes = SegmentBytes, Preallocation = SegmentPreallocation.Inline };

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "raftkv-prealloc-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private static LogEntry Entry(ulong index, ulong term = 1, int size = 40) =>
        new(new LogIndex(index), new Term(term), EntryKind.Normal,
            Encoding.ASCII.GetBytes($"{index}/{term}:".PadRight(size, (char)('a' + (int)(index % 26)))));

    private static void Write(WalLogStore store, params LogEntry[] entries)
    {
        store.Append(entries);
        store.Sync();
    }

    private static ulong[] Indexes(PersistentState state) => [.. state.Entries.Select(e => e.Index.Value)];

    private static string OnlySegment(IFileSystem disk) => "wal/" + disk.List("wal").Single(n => n.EndsWith(".wal", StringComparison.Ordinal));

    private static string LastSegment(IFileSystem disk) => "wal/" + disk.List("wal").Last(n => n.EndsWith(".wal", StringComparison.Ordinal));

    [Fact]
    public void A_preallocated_segment_is_written_in_place_and_its_zeros_are_not_a_torn_tail()
    {
        var disk = new SimFileSystem();
        string segment;
        using (var store = new WalLogStore(disk, Inline))
        {
            store.Load();
            Write(store, Entry(1), Entry(2));
            Write(store, Entry(3));
            segment = OnlySegment(disk);
            disk.ReadAll(segment).Length.Should().Be(SegmentBytes, "the segment was zero-filled before its first batch");
            store.SizeBytes.Should().BeLessThan(SegmentBytes / 4, "the log's size is its records', not the file's");
            disk.Exists(WalLogStore.SparePath).Should().BeFalse("the spare became the segment");
        }

        using (var reopened = new WalLogStore(disk, Inline))
        {
            Indexes(reopened.Load()).Should().Equal(1, 2, 3);
            reopened.RepairedTornTail.Should().BeNull("zeros after the last complete batch were never written");
            Write(reopened, Entry(4));
        }

        disk.ReadAll(segment).Length.Should().Be(SegmentBytes, "the next batch went into the zeros, not past them");
        using var again = new WalLogStore(disk, Inline);
        Indexes(again.Load()).Should().Equal(1, 2, 3, 4);
        again.RepairedTornTail.Should().BeNull();
    }

    [Fact]
    public void A_batch_whose_commit_record_never_landed_is_a_torn_tail_before_the_zeros()
    {
        var disk = new SimFileSystem();
        long validEnd;
        string segment;
        using (var store = new WalLogStore(disk, Inline))
        {
            store.Load();
            Write(store, Entry(1), Entry(2));
            validEnd = store.SizeBytes;
            Write(store, Entry(3), Entry(4));
            segment = OnlySegment(disk);
        }
        // Power failed in the last batch: its entries landed, its commit record did not (zeros are all that is there).
        using (var file = disk.Open(segment, create: false))
        {
            var lastCommit = FindLastCommitRecord(disk.ReadAll(segment));
            lastCommit.Should().BeGreaterThan(validEnd);
            file.Write(lastCommit, new byte[WalLogStore.CommitRecordBytes]);
            file.Sync();
        }

        using var reopened = new WalLogStore(disk, Inline);
        Indexes(reopened.Load()).Should().Equal(1, 2);
        reopened.RepairedTornTail.Should().Be($"{segment} at offset {validEnd}");
        Write(reopened, Entry(3, term: 2));
        using var again = new WalLogStore(disk, Inline);
        again.Load().Entries.Select(e => (e.Index.Value, e.Term.Value)).Should().Equal((1UL, 1UL), (2UL, 1UL), (3UL, 2UL));
    }

    [Fact]
    public void Half_a_record_before_the_zeros_is_a_torn_tail()
    {
        var disk = new SimFileSystem();
        long validEnd;
        string segment;
        using (var store = new WalLogStore(disk, Inline))
        {
            store.Load();
            Write(store, Entry(1));
            validEnd = store.SizeBytes;
            segment = OnlySegment(disk);
        }
        var garbage = Encoding.ASCII.GetBytes("the first half of a record that never finished");
        using (var file = disk.Open(segment, create: false))
        {
            file.Write(validEnd + 3, garbage);
            file.Sync();
        }
        using (var reopened = new WalLogStore(disk, Inline))
        {
            Indexes(reopened.Load()).Should().Equal(1);
            reopened.RepairedTornTail.Should().Be($"{segment} at offset {validEnd}");
            Write(reopened, Entry(2));
        }
        using var again = new WalLogStore(disk, Inline);
        Indexes(again.Load()).Should().Equal(1, 2);
    }

    [Theory]
    [InlineData(1, "a later batch follows")]
    [InlineData(2, "the damaged batch is the last, but none of its sectors is zeros")]
    public void A_bad_record_before_a_complete_batch_in_a_preallocated_segment_is_damage(int damagedBatch, string because)
    {
        var disk = new SimFileSystem();
        long secondBatch;
        using (var store = new WalLogStore(disk, Inline))
        {
            store.Load();
            Write(store, Entry(1, size: 200), Entry(2, size: 200));
            secondBatch = store.SizeBytes;
            Write(store, Entry(3, size: 200));
        }
        var segment = OnlySegment(disk);
        var damagedRecord = damagedBatch == 1 ? 32 : secondBatch;
        disk.FlipBit(segment, damagedRecord + 40, 2);

        var open = () => new WalLogStore(disk, Inline).Load();

        open.Should().Throw<StorageException>(because)
            .WithMessage($"{segment}: a bad checksum at offset {damagedRecord}, followed by a complete batch at offset *: the log is damaged, not torn");
    }

    /// <summary>
    /// Writes entry 1, then a batch of five 300-byte entries that spans four sectors (and, if <paramref name="laterBatch"/>,
    /// entry 7 after it), then puts back the zeros of the big batch's second sector, as if that sector never landed.
    /// </summary>
    private static (string Segment, long FirstBatchEnd) WriteAndLoseASector(SimFileSystem disk, bool laterBatch)
    {
        long firstEnd;
        using (var store = new WalLogStore(disk, Inline))
        {
            store.Load();
            Write(store, Entry(1));
            firstEnd = store.SizeBytes;
            Write(store, [.. Enumerable.Range(2, 5).Select(i => Entry((ulong)i, size: 300))]);
            if (laterBatch)
            {
                Write(store, Entry(7)); // synced after the batch before it: that batch was whole on disk
            }
        }
        var segment = OnlySegment(disk);
        using (var file = disk.Open(segment, create: false))
        {
            file.Write(((firstEnd / 512) + 1) * 512, new byte[512]);
            file.Sync();
        }
        return (segment, firstEnd);
    }

    [Fact]
    public void A_batch_whose_sectors_landed_out_of_order_is_a_torn_tail_even_with_its_commit_record_there()
    {
        // Power failed in the sync: the sector with the commit record landed, the second sector of the batch did not.
        var disk = new SimFileSystem();
        var (segment, validEnd) = WriteAndLoseASector(disk, laterBatch: false);

        using (var reopened = new WalLogStore(disk, Inline))
        {
            Indexes(reopened.Load()).Should().Equal(1);
            reopened.RepairedTornTail.Should().Be($"{segment} at offset {validEnd}");
            Write(reopened, Entry(2, term: 2));
        }
        using var again = new WalLogStore(disk, Inline);
        again.Load().Entries.Select(e => (e.Index.Value, e.Term.Value)).Should().Equal((1UL, 1UL), (2UL, 2UL));
    }

    [Fact]
    public void A_sector_of_zeros_in_a_batch_that_a_later_batch_follows_is_damage()
    {
        var disk = new SimFileSystem();
        var (segment, _) = WriteAndLoseASector(disk, laterBatch: true);

        var open = () => new WalLogStore(disk, Inline).Load();

        // The zeroed sector lies in the batch's second record (its first ends before the sector).
        open.Should().Throw<StorageException>().WithMessage($"{segment}: a bad checksum at offset *, followed by a complete batch at offset *: the log is damaged, not torn");
    }

    [Fact]
    public void A_segment_closed_before_its_zeros_were_used_is_read_through_them()
    {
        // Preallocated to 8 KiB, then SegmentBytes lowered to 4 KiB: the first segment is closed with zeros left in it.
        var disk = new SimFileSystem();
        var larger = Inline with { SegmentBytes = 2 * SegmentBytes };
        using (var store = new WalLogStore(disk, larger))
        {
            store.Load();
            for (ulong i = 1; i <= 50; i++)
            {
                Write(store, Entry(i, size: 60));
            }
            store.SizeBytes.Should().BeInRange(SegmentBytes, (2 * SegmentBytes) - 1);
        }
        using (var store = new WalLogStore(disk, Inline))
        {
            Indexes(store.Load()).Should().HaveCount(50);
            Write(store, Entry(51));
            store.SegmentCount.Should().Be(2);
        }

        using var reopened = new WalLogStore(disk, Inline);
        Indexes(reopened.Load()).Should().Equal(Enumerable.Range(1, 51).Select(i => (ulong)i));
        reopened.RepairedTornTail.Should().BeNull();
    }

    [Fact]
    public void A_spare_left_by_an_earlier_run_is_deleted_when_the_log_loads()
    {
        var disk = new SimFileSystem();
        using (var file = disk.Open(WalLogStore.SparePath, create: true))
        {
            file.Write(0, new byte[100]); // half prepared, never synced
        }
        using var store = new WalLogStore(disk, Inline);
        store.Load();
        disk.Exists(WalLogStore.SparePath).Should().BeFalse();
    }

    [Fact]
    public async Task A_new_log_waits_for_its_first_spare_and_a_later_segment_does_not_wait_for_one()
    {
        var disk = new GatedFileSystem(new SimFileSystem());
        var options = new StorageOptions { SegmentBytes = SegmentBytes, Preallocation = SegmentPreallocation.Background };
        using var store = new WalLogStore(disk, options);
        store.Load();
        store.SparePreparation.Should().NotBeNull("a spare is prepared from the start, for the first segment");

        // While the spare is held, a log without segments waits for it.
        var first = Task.Run(() => Write(store, Entry(1)));
        await Task.Delay(300);
        first.IsCompleted.Should().BeFalse("the first batch waits for the first spare");
        disk.OpenSpare.Set();
        await first.WaitAsync(TimeSpan.FromSeconds(30));
        disk.Length(OnlySegment(disk)).Should().Be(SegmentBytes, "the first segment is the spare");

        // The second segment takes the spare prepared meanwhile; the one after it is held.
        await store.SparePreparation!.WaitAsync(TimeSpan.FromSeconds(30));
        var held = disk.HoldSpare();
        ulong next = 2;
        void FillUntil(int segments)
        {
            while (store.SegmentCount < segments)
            {
                Write(store, Entry(next++, size: 200));
            }
        }
        FillUntil(2);
        disk.Length(LastSegment(disk)).Should().Be(SegmentBytes, "the spare prepared meanwhile became the second segment");
        await held.WaitAsync(TimeSpan.FromSeconds(30));

        // The third segment does not wait for the held spare: it starts empty and grows.
        FillUntil(3);
        disk.Length(LastSegment(disk)).Should().Be(store.SegmentLengths[^1], "the third segment did not wait for the held spare");
        disk.Length(LastSegment(disk)).Should().BeLessThan(SegmentBytes);

        // Once the spare is there, the next segment takes it.
        disk.OpenSpare.Set();
        await store.SparePreparation!.WaitAsync(TimeSpan.FromSeconds(30));
        FillUntil(4);
        disk.Length(LastSegment(disk)).Should().Be(SegmentBytes, "the spare prepared late became the fourth segment");
        await store.SparePreparation!.WaitAsync(TimeSpan.FromSeconds(30)); // the next spare, prepared in turn
        disk.Length(WalLogStore.SparePath).Should().Be(SegmentBytes);

        using var reopened = new WalLogStore(disk, options with { Preallocation = SegmentPreallocation.None });
        Indexes(reopened.Load()).Should().Equal(Enumerable.Range(1, (int)next - 1).Select(i => (ulong)i));
    }

    [Fact]
    public async Task A_spare_that_cannot_be_prepared_leaves_the_log_usable_with_segments_that_grow()
    {
        var disk = new GatedFileSystem(new SimFileSystem()) { FailSpare = true };
        disk.OpenSpare.Set();
        var options = new StorageOptions { SegmentBytes = SegmentBytes, Preallocation = SegmentPreallocation.Background };
        using (var store = new WalLogStore(disk, options))
        {
            store.Load();
            var preparation = store.SparePreparation!;
            var prepared = () => preparation.WaitAsync(TimeSpan.FromSeconds(30));
            await prepared.Should().ThrowAsync<IOException>();
            for (ulong i = 1; i <= 40; i++)
            {
                Write(store, Entry(i, size: 200));
            }
            store.SegmentCount.Should().BeGreaterThan(1);
        }

        using var reopened = new WalLogStore(disk, options);
        Indexes(reopened.Load()).Should().Equal(Enumerable.Range(1, 40).Select(i => (ulong)i));
    }

    [Fact]
    public async Task On_a_real_disk_segments_are_preallocated_and_a_torn_batch_in_one_is_cut()
    {
        Directory.CreateDirectory(_directory);
        var files = new PhysicalFileSystem(_directory);
        var options = new StorageOptions { SegmentBytes = 256 * 1024, Preallocation = SegmentPreallocation.Background };
        string segment;
        long validEnd;
        using (var store = new WalLogStore(files, options))
        {
            store.Load();
            await store.SparePreparation!.WaitAsync(TimeSpan.FromSeconds(30));
            Write(store, [.. Enumerable.Range(1, 10).Select(i => Entry((ulong)i))]);
            validEnd = store.SizeBytes;
            Write(store, Entry(11));
            segment = Path.Combine(_directory, OnlySegment(files));
            new FileInfo(segment).Length.Should().Be(options.SegmentBytes);
        }
        using (var stream = new FileStream(segment, FileMode.Open))
        {
            // The last batch only half made it: what follows its first 50 bytes never reached the disk.
            stream.Position = validEnd + 50;
            stream.Write(new byte[WalLogStore.CommitRecordBytes + 100]);
        }

        using (var reopened = new WalLogStore(files, options))
        {
            Indexes(reopened.Load()).Should().Equal(Enumerable.Range(1, 10).Select(i => (ulong)i));
            reopened.RepairedTornTail.Should().EndWith($"at offset {validEnd}");
            Write(reopened, Entry(11, term: 2));
        }
        using var again = new WalLogStore(files, options);
        again.Load().Entries.Select(e => (e.Index.Value, e.Term.Value)).Last().Should().Be((11UL, 2UL));
        again.RepairedTornTail.Should().BeNull();
    }

    /// <summary>Where the last commit record starts: its magic follows the 12-byte record header.</summary>
    private static long FindLastCommitRecord(byte[] segment) =>
        segment.AsSpan().LastIndexOf("RKVBATCH"u8) - 12;

    /// <summary>
    /// A file system safe for the background preparer (every call under one lock), whose spare is held until
    /// <see cref="OpenSpare"/> is set, or fails when <see cref="FailSpare"/>.
    /// </summary>
    private sealed class GatedFileSystem(SimFileSystem inner) : IFileSystem
    {
        private readonly Lock _lock = new();

        private TaskCompletionSource _held = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ManualResetEventSlim OpenSpare { get; } = new();

        public bool FailSpare { get; init; }

        /// <summary>Holds the next spare's preparation until <see cref="OpenSpare"/> is set; the task completes once one is held.</summary>
        public Task HoldSpare()
        {
            _held = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            OpenSpare.Reset();
            return _held.Task;
        }

        public long Length(string path)
        {
            lock (_lock)
            {
                return inner.ReadAll(path).Length;
            }
        }

        public IReadOnlyList<string> List(string directory)
        {
            lock (_lock)
            {
                return inner.List(directory);
            }
        }

        public bool Exists(string path)
        {
            lock (_lock)
            {
                return inner.Exists(path);
            }
        }

        public void CreateDirectory(string directory)
        {
            lock (_lock)
            {
                inner.CreateDirectory(directory);
            }
        }

        public IStorageFile Open(string path, bool create)
        {
            if (path == WalLogStore.SparePath && create)
            {
                if (!OpenSpare.IsSet)
                {
                    _held.TrySetResult();
                }
                if (!OpenSpare.Wait(TimeSpan.FromSeconds(30)))
                {
                    throw new TimeoutException("the test never released the spare");
                }
                if (FailSpare)
                {
                    throw new IOException("simulated: no space left on device");
                }
            }
            lock (_lock)
            {
                return new LockedFile(inner.Open(path, create), _lock);
            }
        }

        public void Delete(string path)
        {
            lock (_lock)
            {
                inner.Delete(path);
            }
        }

        public void Rename(string from, string to)
        {
            lock (_lock)
            {
                inner.Rename(from, to);
            }
        }

        public void SyncDirectory(string directory)
        {
            lock (_lock)
            {
                inner.SyncDirectory(directory);
            }
        }

        private sealed class LockedFile(IStorageFile file, Lock gate) : IStorageFile
        {
            public string Path => file.Path;

            public long Length
            {
                get
                {
                    lock (gate)
                    {
                        return file.Length;
                    }
                }
            }

            public int Read(long offset, Span<byte> buffer)
            {
                lock (gate)
                {
                    return file.Read(offset, buffer);
                }
            }

            public void Write(long offset, ReadOnlySpan<byte> data)
            {
                lock (gate)
                {
                    file.Write(offset, data);
                }
            }

            public void SetLength(long length)
            {
                lock (gate)
                {
                    file.SetLength(length);
                }
            }

            public void Sync()
            {
                lock (gate)
                {
                    file.Sync();
                }
            }

            public void Dispose()
            {
                lock (gate)
                {
                    file.Dispose();
                }
            }
        }
    }
}
