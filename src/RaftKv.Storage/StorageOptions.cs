using RaftKv.RaftCore;

namespace RaftKv.Storage;

/// <summary>Bounds of the on-disk stores. <see cref="Validate"/> names the field that is wrong.</summary>
public sealed record StorageOptions : IValidatedOptions
{
    /// <summary>A segment that has grown past this many bytes is closed; the next batch starts a new one.</summary>
    public long SegmentBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>The largest entry payload the log accepts or reads back (a bound on any record's length field).</summary>
    public int MaxEntryBytes { get; init; } = 16 * 1024 * 1024;

    /// <summary>Complete snapshots kept on disk; older ones are deleted when a new one is committed.</summary>
    public int SnapshotsToKeep { get; init; } = 2;

    /// <summary>
    /// How a new segment gets its space. A segment written with zeros to <see cref="SegmentBytes"/> and synced before
    /// the log uses it is overwritten in place, so a batch's fdatasync has no file size or block allocation to journal:
    /// on ext4 here that halved the CPU and the wall time of a sync (see <c>docs/architecture.md</c>).
    /// </summary>
    public SegmentPreallocation Preallocation { get; init; } = SegmentPreallocation.Background;

    public IEnumerable<string> Validate()
    {
        if (SegmentBytes < 4096)
        {
            yield return "SegmentBytes: must be at least 4096";
        }
        if (MaxEntryBytes < 1024)
        {
            yield return "MaxEntryBytes: must be at least 1024";
        }
        if (!Enum.IsDefined(Preallocation))
        {
            yield return "Preallocation: must be None, Inline or Background";
        }
        if (SnapshotsToKeep < 1)
        {
            yield return "SnapshotsToKeep: must be at least 1";
        }
    }
}

/// <summary>How <see cref="WalLogStore"/> prepares the space of its next segment.</summary>
public enum SegmentPreallocation
{
    /// <summary>A new segment starts empty and grows with every batch.</summary>
    None,

    /// <summary>
    /// The next segment is zero-filled and synced on the caller's thread when it is needed: a stall of one segment's
    /// worth of writes, for a file system that is not thread-safe (the simulator's).
    /// </summary>
    Inline,

    /// <summary>
    /// The next segment is zero-filled and synced on a thread-pool thread while the active one fills. When it is not
    /// ready in time, the new segment starts empty and grows, as with <see cref="None"/>: a batch never waits for it.
    /// </summary>
    Background,
}
