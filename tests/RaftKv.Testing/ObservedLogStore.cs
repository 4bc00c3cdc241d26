using RaftKv.RaftCore;

namespace RaftKv.Testing;

/// <summary>Passes every call to a real log store and tells a checker what was appended or installed.</summary>
public sealed class ObservedLogStore(ILogStore inner, Action<IReadOnlyList<LogEntry>> appended, Action<SnapshotMetadata> installed) : ILogStore
{
    public PersistentState Load() => inner.Load();

    public void Append(IReadOnlyList<LogEntry> entries)
    {
        inner.Append(entries);
        if (entries.Count > 0)
        {
            appended(entries);
        }
    }

    public void SetHardState(HardState state) => inner.SetHardState(state);

    public void Sync() => inner.Sync();

    public void InstallSnapshot(SnapshotMetadata snapshot)
    {
        installed(snapshot);
        inner.InstallSnapshot(snapshot);
    }

    public void Compact(LogIndex index, Term term) => inner.Compact(index, term);
}
