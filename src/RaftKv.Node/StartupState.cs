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
}
