using System.Text;
using RaftKv.RaftCore;
using RaftKv.Testing;

namespace RaftKv.Storage.Tests;

public sealed class WalLogStoreTests
{
    // These tests read a segment's length on disk as the log's, so their segments grow (WalPreallocationTests has the others).
    private static readonly StorageOptions SmallSegments = new() { SegmentBytes = 4096, Preallocation = SegmentPreallocation.None };
    private static readonly StorageOptions Growing = new() { Preallocation = SegmentPreallocation.None };

    private static LogEntry Entry(ulong index, ulong term, int size = 40) =>
        new(new LogIndex(index), new Term(term), EntryKind.Normal, Payload(index, term, size));

    /// <summary>Deterministic bytes for an entry, so that a reader can tell a right entry from a wrong one.</summary>
    private static byte[] Payload(ulong index, ulong term, int size) =>
        Encoding.ASCII.GetBytes($"{index}/{term}:".PadRight(size, (char)('a' + (int)(index % 26))));

    private static WalLogStore Open(SimFileSystem disk, StorageOptions? options, out PersistentState state)
    {
        var store = new WalLogStore(disk, options ?? SmallSegments);
        state = store.Load();
        return store;
    }

    private static void Write(WalLogStore store, params LogEntry[] entries)
    {
        store.Append(entries);
        store.Sync();
    }

    private static ulong[] Indexes(PersistentState state) => [.. state.Entries.Select(e => e.Index.Value)];

    [Fact]
    public void Entries_and_hard_state_survive_a_reopen()
    {
        var disk = new SimFileSystem();
        using (var store = Open(disk, null, out var empty))
        {
            empty.IsEmpty.Should().BeTrue();
            store.Append([Entry(1, 1), Entry(2, 1)]);
            store.SetHardState(new HardState(new Term(2), new NodeId(3), new LogIndex(1)));
            store.Sync();
            Write(store, Entry(3, 2));
        }

        using var reopened = Open(disk, null, out var state);

        Indexes(state).Should().Equal(1, 2, 3);
        state.Entries[2].Data.ToArray().Should().Equal(Payload(3, 2, 40));
        state.HardState.Term.Should().Be(new Term(2));
        state.HardState.Vote.Should().Be(new NodeId(3));
        reopened.ReadEntry(new LogIndex(2)).Data.ToArray().Should().Equal(Payload(2, 1, 40));
    }

    [Fact]
    public void A_conflicting_suffix_is_replaced_and_stays_replaced_after_reopen()
    {
        var disk = new SimFileSystem();
        using (var store = Open(disk, null, out _))
        {
            Write(store, Entry(1, 1), Entry(2, 1), Entry(3, 1), Entry(4, 1));
            Write(store, Entry(3, 2), Entry(4, 2));
            Write(store, Entry(5, 2));
        }

        using var reopened = Open(disk, null, out var state);

        state.Entries.Select(e => (e.Index.Value, e.Term.Value)).Should().Equal((1UL, 1UL), (2UL, 1UL), (3UL, 2UL), (4UL, 2UL), (5UL, 2UL));
        reopened.ReadEntry(new LogIndex(3)).Term.Should().Be(new Term(2));
    }

    [Fact]
    public void A_suffix_replaced_from_an_index_that_was_later_compacted_stays_replaced_after_reopen()
    {
        // Found by the simulator (seed 1003380): a follower of term 4 held 2/4 3/4 4/4; the leader of term 5 replaced
        // 3/4 4/4 with 3/5; a snapshot at 3 with SnapshotKeepEntries = 0 compacted through 3/5 itself. Replay skipped
        // 3/5 as compacted, and with it the cut it made, so 4/4 came back after the base 3/5.
        var disk = new SimFileSystem();
        using (var store = Open(disk, null, out _))
        {
            Write(store, Entry(1, 1), Entry(2, 4), Entry(3, 4), Entry(4, 4));
            Write(store, Entry(3, 5));
            store.Compact(new LogIndex(3), new Term(5));
        }

        using var reopened = Open(disk, null, out var state);

        state.BaseIndex.Should().Be(new LogIndex(3));
        state.BaseTerm.Should().Be(new Term(5));
        state.Entries.Should().BeEmpty("4/4 was cut when 3/5 replaced 3/4, before the compaction");

        Write(reopened, Entry(4, 5));
        using var again = Open(disk, null, out var later);
        later.Entries.Select(e => (e.Index.Value, e.Term.Value)).Should().Equal((4UL, 5UL));
    }

    [Theory]
    [InlineData(SegmentPreallocation.None)]
    [InlineData(SegmentPreallocation.Inline)]
    public void A_crash_at_any_point_of_an_append_loses_only_entries_not_yet_reported_persisted(SegmentPreallocation preallocation)
    {
        var options = SmallSegments with { Preallocation = preallocation };
        for (var seed = 0; seed < 300; seed++)
        {
            var random = new Random(seed);
            var disk = new SimFileSystem();
            var store = Open(disk, options, out _);
            var persisted = new List<(ulong Index, ulong Term)>(); // what Sync reported durable
            var model = new List<(ulong Index, ulong Term)>();
            ulong term = 1;
            var batches = random.Next(1, 40);
            List<(ulong Index, ulong Term)>? unsyncedOutcome = null;
            for (var b = 0; b < batches; b++)
            {
                // Sometimes a new leader cuts the tail: rewrite from an earlier (uncommitted) index.
                var from = model.Count == 0 || random.Next(5) > 0 ? (ulong)model.Count + 1 : (ulong)random.Next(Math.Max(1, model.Count - 3), model.Count + 1);
                term += from <= (ulong)model.Count ? 1UL : 0UL;
                var count = random.Next(1, 20);
                var entries = Enumerable.Range(0, count).Select(i => Entry(from + (ulong)i, term, random.Next(1, 300))).ToArray();
                model.RemoveRange((int)from - 1, model.Count - ((int)from - 1));
                model.AddRange(entries.Select(e => (e.Index.Value, e.Term.Value)));
                store.Append(entries);
                if (b == batches - 1 && random.Next(2) == 0)
                {
                    // Die inside the last fsync: its batch may be lost, kept whole, or torn.
                    disk.CrashOnNextSync = true;
                    var sync = () => store.Sync();
                    sync.Should().Throw<SimulatedCrashException>();
                    unsyncedOutcome = [.. model];
                    break;
                }
                store.Sync();
                persisted = [.. model];
            }
            if (unsyncedOutcome is null && random.Next(2) == 0)
            {
                // Or die with a batch written but not yet fsynced.
                var extra = Entry((ulong)model.Count + 1, term);
                store.Append([extra]);
                model.Add((extra.Index.Value, extra.Term.Value));
                unsyncedOutcome = [.. model];
            }

            disk.Crash(random);
            using var reopened = new WalLogStore(disk, options);
            var recovered = reopened.Load().Entries.Select(e => (e.Index.Value, e.Term.Value)).ToList();

            // Everything reported persisted is there; the unsynced batch is there whole or not at all.
            var acceptable = unsyncedOutcome is null ? [persisted] : new[] { persisted, unsyncedOutcome };
            acceptable.Should().ContainEquivalentOf(recovered, o => o.WithStrictOrdering(), $"seed {seed}");
            store.Dispose();
        }
    }

    [Fact]
    public void A_torn_tail_is_cut_off_and_its_offset_reported()
    {
        var disk = new SimFileSystem();
        string segment;
        long validLength;
        using (var store = Open(disk, null, out _))
        {
            Write(store, Entry(1, 1), Entry(2, 1));
            Write(store, Entry(3, 1));
            segment = "wal/" + disk.List("wal").Single();
            validLength = disk.ReadAll(segment).Length;
            store.Append([Entry(4, 1), Entry(5, 1)]);
            store.Sync();
        }
        // Power failed while the last batch was being written: only part of it reached the platter.
        var whole = disk.ReadAll(segment);
        using (var file = disk.Open(segment, create: false))
        {
            file.SetLength(validLength + ((whole.Length - validLength) / 2));
            file.Sync();
        }

        using var reopened = Open(disk, null, out var state);

        Indexes(state).Should().Equal(1, 2, 3);
        reopened.RepairedTornTail.Should().Be($"{segment} at offset {validLength}");
        disk.ReadAll(segment).Length.Should().Be((int)validLength);
        Write(reopened, Entry(4, 2));
        using var again = Open(disk, null, out var after);
        Indexes(after).Should().Equal(1, 2, 3, 4);
    }

    [Fact]
    public void A_flipped_bit_in_a_committed_record_stops_the_node_with_file_and_offset()
    {
        var disk = new SimFileSystem();
        using (var store = Open(disk, null, out _))
        {
            Write(store, Entry(1, 1), Entry(2, 1));
            Write(store, Entry(3, 1));
        }
        var segment = "wal/" + disk.List("wal").Single();
        // The segment header is 32 bytes; the first entry record starts right after it. Flip a bit of its data.
        disk.FlipBit(segment, 32 + 12 + 20, 3);

        var open = () => new WalLogStore(disk, Growing).Load();

        open.Should().Throw<StorageException>().WithMessage($"{segment}: a bad checksum at offset 32, followed by a complete batch at offset *: the log is damaged, not torn");
    }

    [Fact]
    public void A_flipped_bit_in_the_last_batch_before_its_commit_record_is_damage_too()
    {
        var disk = new SimFileSystem();
        using (var store = Open(disk, null, out _))
        {
            Write(store, Entry(1, 1));
            Write(store, Entry(2, 1), Entry(3, 1));
        }
        var segment = "wal/" + disk.List("wal").Single();
        var length = disk.ReadAll(segment).Length;
        var lastEntryRecord = length - 32 - (12 + 17 + 40);
        disk.FlipBit(segment, lastEntryRecord + 30, 0);

        var open = () => new WalLogStore(disk, Growing).Load();

        open.Should().Throw<StorageException>().WithMessage($"{segment}: a bad checksum at offset {lastEntryRecord}, followed by a complete batch*");
    }

    [Fact]
    public void A_missing_segment_is_a_gap_that_stops_the_node()
    {
        var disk = new SimFileSystem();
        using (var store = Open(disk, SmallSegments, out _))
        {
            for (ulong i = 1; i <= 300; i++)
            {
                Write(store, Entry(i, 1, 100));
            }
            store.SegmentCount.Should().BeGreaterThan(3);
        }
        var segments = disk.List("wal");
        disk.Delete("wal/" + segments[1]);

        var open = () => new WalLogStore(disk, SmallSegments).Load();

        open.Should().Throw<StorageException>().WithMessage("wal/*: entry * at offset * follows entry *: entries are missing (a gap, or a missing segment)");
    }

    [Fact]
    public void Compaction_drops_covered_segments_and_a_restart_does_not_read_them()
    {
        var disk = new SimFileSystem();
        using (var store = Open(disk, SmallSegments, out _))
        {
            for (ulong i = 1; i <= 300; i++)
            {
                Write(store, Entry(i, 1, 100));
            }
            var before = store.SegmentCount;

            store.Compact(new LogIndex(250), new Term(1));

            store.SegmentCount.Should().BeLessThan(before);
            Write(store, Entry(301, 1, 100));
        }
        using var reopened = Open(disk, SmallSegments, out var state);

        state.BaseIndex.Should().Be(new LogIndex(250));
        state.BaseTerm.Should().Be(new Term(1));
        Indexes(state).Should().Equal(Enumerable.Range(251, 51).Select(i => (ulong)i));
    }

    [Fact]
    public void Segments_left_behind_by_a_crash_during_compaction_are_skipped_unread()
    {
        var disk = new SimFileSystem();
        using (var store = Open(disk, SmallSegments, out _))
        {
            for (ulong i = 1; i <= 300; i++)
            {
                Write(store, Entry(i, 1, 100));
            }
        }
        var oldest = "wal/" + disk.List("wal")[0];
        var kept = disk.ReadAll(oldest);
        using (var store = Open(disk, SmallSegments, out _))
        {
            store.Compact(new LogIndex(250), new Term(1));
        }
        // The crash came after the new base was written and before the deletion: the segment is back, and damaged too.
        using (var file = disk.Open(oldest, create: true))
        {
            file.Write(0, kept);
            file.Sync();
        }
        disk.FlipBit(oldest, 100, 1);

        using var reopened = Open(disk, SmallSegments, out var state);

        Indexes(state).First().Should().Be(251UL);
        disk.Exists(oldest).Should().BeFalse("a compacted segment found at start is deleted, not read");
    }

    [Fact]
    public void An_installed_snapshot_replaces_the_log_and_old_segments_never_come_back()
    {
        var disk = new SimFileSystem();
        var config = ClusterConfig.Create([new NodeId(1)]);
        using (var store = Open(disk, null, out _))
        {
            Write(store, Entry(1, 1), Entry(2, 1), Entry(3, 1));
            store.InstallSnapshot(new SnapshotMetadata(new LogIndex(10), new Term(3), config));
            Write(store, Entry(11, 3));
        }

        using var reopened = Open(disk, null, out var state);

        state.BaseIndex.Should().Be(new LogIndex(10));
        state.BaseTerm.Should().Be(new Term(3));
        Indexes(state).Should().Equal(11);
        state.HardState.Commit.Should().Be(new LogIndex(10));
        disk.List("wal").Should().OnlyContain(name => name.StartsWith("00000002-", StringComparison.Ordinal));
    }

    [Fact]
    public void A_failed_fsync_is_never_retried_and_poisons_the_log()
    {
        var disk = new SimFileSystem();
        using var store = Open(disk, null, out _);
        Write(store, Entry(1, 1));
        store.Append([Entry(2, 1)]);
        disk.FailNextSync = true;

        var sync = () => store.Sync();
        var next = () => store.Append([Entry(3, 1)]);

        sync.Should().Throw<StorageException>().WithMessage("wal/*: writing * bytes at offset * and fsyncing them failed: simulated fsync failure (EIO)*");
        next.Should().Throw<StorageException>().WithMessage("the log is unusable after an earlier failure*");
    }

    [Fact]
    public void A_damaged_state_file_is_refused_by_name()
    {
        var disk = new SimFileSystem();
        using (var store = Open(disk, null, out _))
        {
            store.Append([Entry(1, 1)]);
            store.SetHardState(new HardState(new Term(1), NodeId.None, LogIndex.Zero));
            store.Sync();
        }
        disk.FlipBit("state", 20, 2);

        var open = () => new WalLogStore(disk, Growing).Load();

        open.Should().Throw<StorageException>().WithMessage("state: damaged log state file*");
    }

    [Fact]
    public void Segments_without_their_state_file_are_refused()
    {
        var disk = new SimFileSystem();
        using (var store = Open(disk, null, out _))
        {
            store.Append([Entry(1, 1)]);
            store.SetHardState(new HardState(new Term(1), NodeId.None, LogIndex.Zero));
            store.Sync();
        }
        disk.Delete("state");

        var open = () => new WalLogStore(disk, Growing).Load();

        open.Should().Throw<StorageException>().WithMessage("wal/ holds 1 segments but the state file is missing*");
    }

    [Fact]
    public void Only_a_changed_term_or_vote_costs_a_state_file_write()
    {
        var disk = new SimFileSystem();
        using var store = Open(disk, null, out _);
        store.Append([Entry(1, 1)]);
        store.SetHardState(new HardState(new Term(1), NodeId.None, new LogIndex(1)));
        store.Sync();
        var syncs = disk.Syncs;

        store.Append([Entry(2, 1)]);
        store.SetHardState(new HardState(new Term(1), NodeId.None, new LogIndex(2)));
        store.Sync();

        (disk.Syncs - syncs).Should().Be(1, "one fsync for the batch, none for a new commit index");
    }

    [Fact]
    public void A_suffix_replaced_from_below_a_full_segment_stays_replaced_after_reopen()
    {
        // A new segment is named by its first index and replay reads segments in that order. A cut below the first index
        // of a full active segment must not start a segment that sorts before the one holding the entries it replaces.
        var disk = new SimFileSystem();
        ulong fullFrom;
        using (var store = Open(disk, SmallSegments, out _))
        {
            // Find where segments roll, then fill the active segment exactly as full as the one before it.
            ulong next = 1;
            var rolls = new List<ulong>();
            while (rolls.Count < 2)
            {
                var before = store.SegmentCount;
                Write(store, Entry(next, 1, 100));
                if (store.SegmentCount > before && next > 1)
                {
                    rolls.Add(next);
                }
                next++;
            }
            fullFrom = rolls[1];
            while (next < fullFrom + (rolls[1] - rolls[0]))
            {
                Write(store, Entry(next++, 1, 100));
            }
            Write(store, Entry(fullFrom - 3, 2, 100), Entry(fullFrom - 2, 2, 100), Entry(fullFrom - 1, 2, 100));
        }

        using var reopened = Open(disk, SmallSegments, out var state);

        state.Entries.Select(e => (e.Index.Value, e.Term.Value)).Should().Equal(
            Enumerable.Range(1, (int)fullFrom - 1).Select(i => ((ulong)i, i < (int)fullFrom - 3 ? 1UL : 2UL)));
    }
}
