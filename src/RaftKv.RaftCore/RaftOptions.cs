namespace RaftKv.RaftCore;

/// <summary>
/// The protocol's settings. Time is counted in ticks: the node loop turns wall-clock time into <see cref="RaftNode.Tick"/> calls.
/// Every bound has a default; <see cref="Validate"/> names the field that is wrong.
/// </summary>
public sealed record RaftOptions : IValidatedOptions
{
    public required NodeId Id { get; init; }

    /// <summary>Seeds the election jitter. The core has no other randomness.</summary>
    public required int RandomSeed { get; init; }

    /// <summary>A follower that hears no leader for a random time in [ElectionTimeoutTicks, 2·ElectionTimeoutTicks) campaigns.</summary>
    public int ElectionTimeoutTicks { get; init; } = 10;

    public int HeartbeatIntervalTicks { get; init; } = 1;

    /// <summary>Dissertation §9.6: probe with a PreVote round before raising the term.</summary>
    public bool PreVote { get; init; } = true;

    /// <summary>Dissertation §6.2: a leader that has not heard from a quorum within an election timeout steps down.</summary>
    public bool CheckQuorum { get; init; } = true;

    /// <summary>Appends in flight to one follower before the leader waits for acknowledgements.</summary>
    public int MaxInflightAppends { get; init; } = 256;

    /// <summary>Bytes of entries in flight to one follower.</summary>
    public int MaxInflightBytes { get; init; } = 8 * 1024 * 1024;

    /// <summary>Bytes of entries in one AppendEntries message (at least one entry is always sent).</summary>
    public int MaxAppendBytes { get; init; } = 1024 * 1024;

    /// <summary>Bytes of proposed but not yet committed entries a leader accepts before it refuses proposals.</summary>
    public long MaxUncommittedBytes { get; init; } = 64L * 1024 * 1024;

    /// <summary>Bytes of committed entries handed out for applying in one Ready (at least one entry).</summary>
    public int MaxApplyBytesPerReady { get; init; } = 4 * 1024 * 1024;

    /// <summary>Read requests waiting for a ReadIndex round (or for the leader's first commit in its term).</summary>
    public int MaxPendingReads { get; init; } = 65_536;

    /// <summary>A follower in snapshot state that has not answered for this long is probed again.</summary>
    public int SnapshotTimeoutTicks { get; init; } = 300;

    /// <summary>A learner is promoted to voter only when it is at most this many entries behind the leader's log.</summary>
    public int MaxPromoteLagEntries { get; init; } = 1_000;

    public IEnumerable<string> Validate()
    {
        if (Id.IsNone)
        {
            yield return "Id: must be a node id greater than zero";
        }
        if (ElectionTimeoutTicks < 2)
        {
            yield return "ElectionTimeoutTicks: must be at least 2";
        }
        if (HeartbeatIntervalTicks < 1)
        {
            yield return "HeartbeatIntervalTicks: must be at least 1";
        }
        if (HeartbeatIntervalTicks >= ElectionTimeoutTicks)
        {
            yield return "HeartbeatIntervalTicks: must be less than ElectionTimeoutTicks";
        }
        if (MaxInflightAppends < 1)
        {
            yield return "MaxInflightAppends: must be at least 1";
        }
        if (MaxInflightBytes < 1)
        {
            yield return "MaxInflightBytes: must be at least 1";
        }
        if (MaxAppendBytes < 1)
        {
            yield return "MaxAppendBytes: must be at least 1";
        }
        if (MaxUncommittedBytes < 1)
        {
            yield return "MaxUncommittedBytes: must be at least 1";
        }
        if (MaxApplyBytesPerReady < 1)
        {
            yield return "MaxApplyBytesPerReady: must be at least 1";
        }
        if (MaxPendingReads < 1)
        {
            yield return "MaxPendingReads: must be at least 1";
        }
        if (MaxPromoteLagEntries < 0)
        {
            yield return "MaxPromoteLagEntries: must be at least 0";
        }
        if (SnapshotTimeoutTicks < ElectionTimeoutTicks)
        {
            yield return "SnapshotTimeoutTicks: must be at least ElectionTimeoutTicks";
        }
    }
}
