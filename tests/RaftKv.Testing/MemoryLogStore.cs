using RaftKv.RaftCore;

namespace RaftKv.Testing;

/// <summary>
/// An in-memory log store that models a disk with a page cache: writes land in a volatile view at once and become
/// durable only at <see cref="Sync"/>. <see cref="Crash"/> keeps what was synced plus a random prefix of what was not
/// (the kernel may have written some pages back), as a real crash can. Faults can be armed for the next sync.
/// </summary>
public sealed class MemoryLogStore : ILogStore
{
    private readonly List<Action<State>> _unsynced = [];
    private readonly State _durable = new();
    private State _current = new();

    /// <summary>The next <see cref="Sync"/> throws <see cref="SimulatedCrashException"/> before anything becomes durable.</summary>
    public bool CrashOnNextSync { get; set; }

    /// <summary>The next <see cref="Sync"/> fails with <see cref="StorageException"/>, as an EIO from fsync would.</summary>
    public bool FailNextSync { get; set; }

    /// <summary>
    /// The next <see cref="Compact"/> fails with <see cref="StorageException"/>, as WalLogStore's does when the fsync of its
    /// state file (the new base) fails.
    /// </summary>
    public bool FailNextCompact { get; set; }

    /// <summary>Called with every batch of entries as it is appended (checkers hook in here).</summary>
    public Action<IReadOnlyList<LogEntry>>? OnAppend { get; set; }

    public int SyncCount { get; private set; }

    public HardState DurableHardState => _durable.Hard;

    public PersistentState Load() =>
        new(_current.Hard, null, _current.BaseIndex, _current.BaseTerm, [.. _current.Entries]);

    public void Append(IReadOnlyList<LogEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        if (entries.Count == 0)
        {
            return;
        }
        var copy = entries.ToArray();
        Record(state =>
        {
            var first = copy[0].Index;
            Invariant.Assert(first > state.BaseIndex && first.Value <= state.LastIndex.Value + 1, $"append at {first} leaves a gap after {state.LastIndex}");
            var keep = (int)(first.Value - state.BaseIndex.Value - 1);
            state.Entries.RemoveRange(keep, state.Entries.Count - keep);
            state.Entries.AddRange(copy);
        });
        OnAppend?.Invoke(copy);
    }

    public void SetHardState(HardState state) => Record(s => s.Hard = state);

    public void Sync()
    {
        if (CrashOnNextSync)
        {
            CrashOnNextSync = false;
            throw new SimulatedCrashException("crash during fsync");
        }
        if (FailNextSync)
        {
            FailNextSync = false;
            throw new StorageException("simulated fsync failure (EIO) on the log");
        }
        foreach (var write in _unsynced)
        {
            write(_durable);
        }
        _unsynced.Clear();
        SyncCount++;
    }

    /// <summary>Called when the log is replaced by a snapshot's base.</summary>
    public Action<SnapshotMetadata>? OnInstallSnapshot { get; set; }

    public void InstallSnapshot(SnapshotMetadata snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        OnInstallSnapshot?.Invoke(snapshot);
        Record(s =>
        {
            s.Entries.Clear();
            s.BaseIndex = snapshot.Index;
            s.BaseTerm = snapshot.Term;
        });
    }

    public void Compact(LogIndex index, Term term)
    {
        if (FailNextCompact)
        {
            FailNextCompact = false;
            throw new StorageException("state: replacing the log state file failed: simulated fsync failure (EIO)");
        }
        Record(s =>
        {
            if (index <= s.BaseIndex)
            {
                return;
            }
            var count = (int)Math.Min((ulong)s.Entries.Count, index.Value - s.BaseIndex.Value);
            s.Entries.RemoveRange(0, count);
            s.BaseIndex = index;
            s.BaseTerm = term;
        });
    }

    /// <summary>
    /// The machine lost power: what was synced survives, plus the first <paramref name="keepUnsynced"/> unsynced writes
    /// (clamped). The store is then as a restarted process finds it.
    /// </summary>
    public void Crash(int keepUnsynced)
    {
        var keep = Math.Clamp(keepUnsynced, 0, _unsynced.Count);
        for (var i = 0; i < keep; i++)
        {
            _unsynced[i](_durable);
        }
        _unsynced.Clear();
        _current = _durable.Clone();
        CrashOnNextSync = false;
        FailNextSync = false;
        FailNextCompact = false;
    }

    public int UnsyncedWrites => _unsynced.Count;

    private void Record(Action<State> write)
    {
        write(_current);
        _unsynced.Add(write);
    }

    private sealed class State
    {
        public HardState Hard { get; set; } = HardState.Empty;

        public LogIndex BaseIndex { get; set; }

        public Term BaseTerm { get; set; }

        public List<LogEntry> Entries { get; private init; } = [];

        public LogIndex LastIndex => BaseIndex.Plus(Entries.Count);

        public State Clone() => new() { Hard = Hard, BaseIndex = BaseIndex, BaseTerm = BaseTerm, Entries = [.. Entries] };
    }
}

/// <summary>Thrown by simulated storage to model the process dying at that instant.</summary>
public sealed class SimulatedCrashException : Exception
{
    public SimulatedCrashException(string message) : base(message)
    {
    }

    public SimulatedCrashException()
    {
    }

    public SimulatedCrashException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
