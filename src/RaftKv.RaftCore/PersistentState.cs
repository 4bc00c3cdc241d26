namespace RaftKv.RaftCore;

/// <summary>
/// What a node finds on its disk when it starts: hard state, the newest snapshot, and the log after the base.
/// <see cref="BaseIndex"/>/<see cref="BaseTerm"/> is the last entry compacted away (0/0 if none).
/// </summary>
public sealed record PersistentState(
    HardState HardState,
    SnapshotMetadata? Snapshot,
    LogIndex BaseIndex,
    Term BaseTerm,
    IReadOnlyList<LogEntry> Entries)
{
    /// <summary>
    /// The state every member of a new cluster starts from: one committed configuration entry at index 1, term 1.
    /// All members must be given the same configuration, as with etcd's --initial-cluster.
    /// </summary>
    public static PersistentState Bootstrap(ClusterConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var first = new LogEntry(new LogIndex(1), new Term(1), EntryKind.Config, config.Encode());
        return new PersistentState(new HardState(new Term(1), NodeId.None, new LogIndex(1)), null, LogIndex.Zero, Term.Zero, [first]);
    }

    /// <summary>
    /// Joins the log store's state with the newest snapshot in the snapshot store. A snapshot that the log still holds
    /// (same index and term) becomes the base the state machine starts from. A snapshot the log does not hold (received
    /// from a leader, then a crash before the log was reset) replaces the log: its entries are committed, so any local
    /// entry that conflicts with it, and everything after, was never committed.
    /// </summary>
    public PersistentState WithSnapshot(SnapshotMetadata? snapshot)
    {
        if (snapshot is null)
        {
            return this;
        }
        if (snapshot.Index < BaseIndex)
        {
            throw new StorageException($"the log was compacted through {BaseIndex} but the newest snapshot ends at {snapshot.Index}");
        }
        var commit = LogIndex.Max(HardState.Commit, snapshot.Index);
        if (TermAt(snapshot.Index) == snapshot.Term)
        {
            return this with { Snapshot = snapshot, HardState = HardState with { Commit = LogIndex.Min(LogIndex.Max(commit, snapshot.Index), LastIndex) } };
        }
        var hardState = snapshot.Term > HardState.Term
            ? new HardState(snapshot.Term, NodeId.None, snapshot.Index)
            : HardState with { Commit = snapshot.Index };
        return new PersistentState(hardState, snapshot, snapshot.Index, snapshot.Term, []);
    }

    public LogIndex LastIndex => BaseIndex.Plus(Entries.Count);

    private Term? TermAt(LogIndex index)
    {
        if (index == BaseIndex)
        {
            return BaseTerm;
        }
        if (index < BaseIndex || index > LastIndex)
        {
            return null;
        }
        return Entries[(int)(index.Value - BaseIndex.Value - 1)].Term;
    }

    public bool IsEmpty => Snapshot is null && Entries.Count == 0 && HardState == HardState.Empty;
}
