using RaftKv.RaftCore;

namespace RaftKv.Node;

/// <summary>How a node finds its starting state: bootstrap an empty store, or reconcile the stored log with the newest snapshot.</summary>
public static class StartupState
{
    /// <summary>
    /// Loads what the stores hold. An empty store is bootstrapped with <paramref name="initialConfig"/> (and synced), or,
    /// with none (a node joining an existing cluster), left empty: the node waits to be added and learns its configuration
    /// from the leader.
    /// If the newest snapshot replaces the stored log (a snapshot received just before a crash), the log store is reset to it.
    /// </summary>
    public static PersistentState Load(ILogStore store, ISnapshotStore snapshots, ClusterConfig? initialConfig)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(snapshots);
        var stored = store.Load();
        if (stored.IsEmpty && snapshots.Latest is null)
        {
            if (initialConfig is null)
            {
                return stored;
            }
            var bootstrap = PersistentState.Bootstrap(initialConfig);
            store.Append(bootstrap.Entries);
            store.SetHardState(bootstrap.HardState);
            store.Sync();
            return bootstrap;
        }
        var state = stored.WithSnapshot(snapshots.Latest);
        var replaced = state.BaseIndex != stored.BaseIndex || state.Entries.Count != stored.Entries.Count;
        if (replaced && state.Snapshot is { } snapshot)
        {
            store.InstallSnapshot(snapshot);
            store.SetHardState(state.HardState);
            store.Sync();
        }
        return state;
    }

    /// <summary>
    /// Disaster recovery, when a majority is lost for good: makes this node's log end with a configuration of
    /// <paramref name="single"/> alone, after every entry it holds (none is dropped: entries it holds may have been
    /// committed and acknowledged; those that were not become committed, which no client was promised otherwise).
    /// The node then elects itself and commits them. Returns the state as stored now.
    /// </summary>
    public static PersistentState ForceSingleMember(ILogStore store, PersistentState state, ClusterConfig single)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(state);
        ArgumentNullException.ThrowIfNull(single);
        Invariant.Assert(single.Voters.Count == 1 && single.Learners.IsEmpty && !single.IsJoint, "a forced cluster has one voter");
        var lastTerm = state.Entries.Count > 0 ? state.Entries[^1].Term : state.BaseTerm;
        var term = Term.Max(state.HardState.Term, lastTerm);
        var entry = new LogEntry(state.LastIndex.Next(), term, EntryKind.Config, single.Encode());
        var hardState = state.HardState with { Term = term };
        store.Append([entry]);
        store.SetHardState(hardState);
        store.Sync();
        return state with { HardState = hardState, Entries = [.. state.Entries, entry] };
    }
}
