using RaftKv.RaftCore;
using RaftKv.Testing;

namespace RaftKv.Storage.Tests;

public sealed class FileSnapshotStoreTests
{
    private static readonly ClusterConfig Config = ClusterConfig.Create([new NodeId(1), new NodeId(2), new NodeId(3)]);

    private static SnapshotMetadata Meta(ulong index, ulong term = 2) => new(new LogIndex(index), new Term(term), Config);

    private static byte[] Data(int size, byte seed) => [.. Enumerable.Range(0, size).Select(i => (byte)(i * 7 + seed))];

    private static void Save(ISnapshotStore store, SnapshotMetadata meta, byte[] data)
    {
        using var writer = store.Create(meta);
        // Written in pieces, as a state machine streams it.
        for (var offset = 0; offset < data.Length; offset += 1000)
        {
            writer.Stream.Write(data, offset, Math.Min(1000, data.Length - offset));
        }
        writer.Commit();
    }

    private static byte[] Load(ISnapshotStore store, SnapshotMetadata meta)
    {
        using var stream = store.OpenRead(meta);
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }

    [Fact]
    public void A_snapshot_round_trips_with_its_metadata_and_survives_a_restart()
    {
        var disk = new SimFileSystem();
        var data = Data(25_000, 3);
        Save(new FileSnapshotStore(disk), Meta(100), data);

        var reopened = new FileSnapshotStore(disk);

        reopened.Latest.Should().Be(Meta(100));
        reopened.Latest!.Config.Should().Be(Config);
        Load(reopened, Meta(100)).Should().Equal(data);
    }

    [Fact]
    public void Only_the_newest_snapshots_are_kept()
    {
        var disk = new SimFileSystem();
        var store = new FileSnapshotStore(disk, new StorageOptions { SnapshotsToKeep = 2 });

        foreach (var index in new ulong[] { 10, 20, 30, 40 })
        {
            Save(store, Meta(index), Data(100, (byte)index));
        }

        store.All.Select(m => m.Index.Value).Should().Equal(30UL, 40UL);
        disk.List("snapshots").Should().HaveCount(2);
        store.Latest!.Index.Should().Be(new LogIndex(40));
    }

    [Fact]
    public void A_damaged_snapshot_is_refused_by_name_before_anything_is_restored()
    {
        var disk = new SimFileSystem();
        var store = new FileSnapshotStore(disk);
        Save(store, Meta(7), Data(5_000, 1));
        var file = "snapshots/" + disk.List("snapshots").Single();
        disk.FlipBit(file, 2_000, 4);

        var open = () => store.OpenRead(Meta(7));

        open.Should().Throw<StorageException>().WithMessage($"{file}: snapshot checksum does not match*");
    }

    [Fact]
    public void A_failed_fsync_at_commit_is_a_storage_failure_naming_the_file_and_the_snapshot_stays_invisible()
    {
        var disk = new SimFileSystem();
        var store = new FileSnapshotStore(disk);
        var writer = store.Create(Meta(10));
        writer.Stream.Write(Data(500, 1));
        disk.FailNextSync = true;

        var commit = () => writer.Commit();

        commit.Should().Throw<StorageException>().WithMessage("snapshots/*10*.tmp: writing the end of snapshot 10/2 at offset * and fsyncing it failed: *EIO*");
        writer.Dispose();
        store.Latest.Should().BeNull();
        disk.List("snapshots").Should().BeEmpty();
    }

    [Fact]
    public void A_snapshot_that_was_never_committed_does_not_exist_after_a_restart()
    {
        var disk = new SimFileSystem();
        var store = new FileSnapshotStore(disk);
        Save(store, Meta(5), Data(100, 5));
        var writer = store.Create(Meta(9));
        writer.Stream.Write(Data(300, 9));
        // The process dies here: no Commit.

        disk.Crash(new Random(1));
        var reopened = new FileSnapshotStore(disk);

        reopened.Latest.Should().Be(Meta(5));
        disk.List("snapshots").Should().ContainSingle();
        writer.Dispose();
    }

    [Fact]
    public void A_committed_snapshot_survives_power_loss()
    {
        var disk = new SimFileSystem();
        Save(new FileSnapshotStore(disk), Meta(12), Data(2_000, 12));

        disk.Crash(new Random(7));

        Load(new FileSnapshotStore(disk), Meta(12)).Should().Equal(Data(2_000, 12));
    }
}
