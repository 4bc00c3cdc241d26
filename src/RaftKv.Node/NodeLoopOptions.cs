using RaftKv.RaftCore;

namespace RaftKv.Node;

/// <summary>Bounds and thresholds of the node loop. <see cref="Validate"/> names the field that is wrong.</summary>
public sealed record NodeLoopOptions : IValidatedOptions
{
    /// <summary>Inputs the loop's channel holds. Peer messages beyond it are dropped and counted; requests are refused.</summary>
    public int InboxCapacity { get; init; } = 16_384;

    /// <summary>Inputs drained into one step (one Ready, one fsync).</summary>
    public int MaxBatchInputs { get; init; } = 4_096;

    /// <summary>Proposals and reads admitted and not yet answered.</summary>
    public int MaxPendingRequests { get; init; } = 16_384;

    /// <summary>
    /// Entries applied since the last snapshot before the loop takes a new one, once the bytes they brought also reach
    /// <see cref="SnapshotMinAppliedShare"/> of the last snapshot's size.
    /// </summary>
    public int SnapshotThresholdEntries { get; init; } = 10_000;

    /// <summary>Bytes of entries applied since the last snapshot after which the loop takes a new one in any case: the bound on the log kept between snapshots.</summary>
    public long SnapshotThresholdBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>
    /// The share of the last snapshot's size that the bytes applied since must reach before the entries threshold takes
    /// a new one (0: the entries alone). A state is then not written out again after every few writes: at 1 a node
    /// writes at most one byte of snapshot per byte applied (below the bytes threshold), where a 100,000-key state with
    /// the entries alone spent two fifths of a follower's CPU on snapshots. The price is a longer log between snapshots,
    /// in memory and replayed at restart: at most this share of the state, and never beyond the bytes threshold.
    /// </summary>
    public double SnapshotMinAppliedShare { get; init; } = 1;

    /// <summary>Entries kept in the log behind a new snapshot, for followers that are only a little behind.</summary>
    public int SnapshotKeepEntries { get; init; } = 1_000;

    public IEnumerable<string> Validate()
    {
        if (InboxCapacity < 16)
        {
            yield return "InboxCapacity: must be at least 16";
        }
        if (MaxBatchInputs < 1)
        {
            yield return "MaxBatchInputs: must be at least 1";
        }
        if (MaxPendingRequests < 1)
        {
            yield return "MaxPendingRequests: must be at least 1";
        }
        if (SnapshotThresholdEntries < 1)
        {
            yield return "SnapshotThresholdEntries: must be at least 1";
        }
        if (SnapshotThresholdBytes < 1)
        {
            yield return "SnapshotThresholdBytes: must be at least 1";
        }
        if (!(SnapshotMinAppliedShare >= 0 && SnapshotMinAppliedShare <= 16))
        {
            yield return "SnapshotMinAppliedShare: must be between 0 and 16";
        }
        if (SnapshotKeepEntries < 0)
        {
            yield return "SnapshotKeepEntries: must not be negative";
        }
    }
}
