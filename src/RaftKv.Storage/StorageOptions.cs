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
        if (SnapshotsToKeep < 1)
        {
            yield return "SnapshotsToKeep: must be at least 1";
        }
    }
}
