namespace RaftKv.RaftCore;

/// <summary>
/// The core's view of its log: entries (BaseIndex, LastIndex] in memory, plus the three watermarks that
/// docs/glossary.md keeps apart: <see cref="Persisted"/> (on this node's disk), <see cref="Committed"/> (on a quorum),
/// <see cref="Applied"/> (in the state machine). BaseIndex/BaseTerm is the last entry that compaction or a snapshot
/// removed; index 0 / term 0 for a log that was never compacted.
/// </summary>
internal sealed class RaftLog
{
    // Invariant: _entries[i].Index == BaseIndex + 1 + i, and terms never decrease along the list.
    private readonly List<LogEntry> _entries = [];

    // The first index not yet handed to storage through a Ready. Invariant: BaseIndex < _unpersistedFrom <= LastIndex + 1.
    private LogIndex _unpersistedFrom;

    // Configuration entries in (BaseIndex, LastIndex], in index order; the newest is in force (dissertation §4.1).
    private readonly List<(LogIndex Index, ClusterConfig Config)> _configs = [];

    // The configuration in force at BaseIndex (from the snapshot that covers it); null for a log that starts at index 1.
    private ClusterConfig? _baseConfig;

    public RaftLog(LogIndex baseIndex, Term baseTerm, IReadOnlyList<LogEntry> entries, LogIndex committed, SnapshotMetadata? snapshot)
    {
        BaseIndex = baseIndex;
        BaseTerm = baseTerm;
        LatestSnapshot = snapshot;
        _baseConfig = snapshot?.Config;
        Invariant.Assert(snapshot is null || snapshot.Index >= baseIndex, "the log base is at or below the newest snapshot");
        foreach (var entry in entries)
        {
            Append(entry);
        }
        _unpersistedFrom = LastIndex.Next();
        Persisted = LastIndex;
        // What was persisted as committed may lag the log, never pass it.
        Invariant.Assert(committed <= LastIndex, $"commit {committed} beyond last index {LastIndex}");
        // The state machine starts from the newest snapshot (if any) and replays the log after it.
        Applied = LogIndex.Max(baseIndex, snapshot?.Index ?? LogIndex.Zero);
        Invariant.Assert(Applied <= LastIndex, $"snapshot {Applied} beyond the log's last index {LastIndex}");
        Committed = LogIndex.Max(committed, Applied);
    }

    public LogIndex BaseIndex { get; private set; }

    public Term BaseTerm { get; private set; }

    /// <summary>The newest snapshot this node holds (taken locally or installed); null before the first.</summary>
    public SnapshotMetadata? LatestSnapshot { get; private set; }

    /// <summary>A snapshot received from the leader that the next Ready must install. Null when none waits.</summary>
    public SnapshotMetadata? PendingSnapshot { get; private set; }

    // Invariant: Committed never decreases and never passes LastIndex.
    public LogIndex Committed { get; private set; }

    // Invariant: Applied <= Committed and Applied <= Persisted; it never decreases.
    public LogIndex Applied { get; private set; }

    // Invariant: Persisted <= LastIndex; it decreases only when an unpersisted-then-conflicting suffix is cut.
    public LogIndex Persisted { get; private set; }

    public LogIndex FirstIndex => BaseIndex.Next();

    public LogIndex LastIndex => BaseIndex.Plus(_entries.Count);

    public Term LastTerm => _entries.Count == 0 ? BaseTerm : _entries[^1].Term;

    public int Count => _entries.Count;

    /// <summary>The configuration in force: the newest one in the log, else the snapshot's. Null only for a node never bootstrapped.</summary>
#if MUTANT_CONFIG_ON_COMMIT
    // Mutant: a configuration takes effect when it commits, not when it is appended.
    public ClusterConfig? Config => ConfigAt(Committed) ?? (_configs.Count > 0 ? _configs[0].Config : _baseConfig);
#else
    public ClusterConfig? Config => _configs.Count > 0 ? _configs[^1].Config : _baseConfig;
#endif

    /// <summary>Where the configuration in force was appended: its entry's index, or the log base when the snapshot's holds.</summary>
    public LogIndex ConfigIndex => _configs.Count > 0 ? _configs[^1].Index : BaseIndex;

    /// <summary>The configuration in force at <paramref name="index"/> (at or after the log base).</summary>
    public ClusterConfig? ConfigAt(LogIndex index)
    {
        for (var i = _configs.Count - 1; i >= 0; i--)
        {
            if (_configs[i].Index <= index)
            {
                return _configs[i].Config;
            }
        }
        return _baseConfig;
    }

    /// <summary>The term of the entry at <paramref name="index"/>, or null if the log does not know it (compacted or beyond the end).</summary>
    public Term? TermAt(LogIndex index)
    {
        if (index == BaseIndex)
        {
            return BaseTerm;
        }
        if (index < BaseIndex || index > LastIndex)
        {
            return null;
        }
        return _entries[Offset(index)].Term;
    }

    public bool Matches(LogIndex index, Term term) => TermAt(index) == term;

    public LogEntry EntryAt(LogIndex index)
    {
        Invariant.Assert(index > BaseIndex && index <= LastIndex, $"entry {index} outside ({BaseIndex}, {LastIndex}]");
        return _entries[Offset(index)];
    }

    /// <summary>Entries from <paramref name="from"/> on, at most <paramref name="maxBytes"/> of them but always at least one.</summary>
    public IReadOnlyList<LogEntry> Slice(LogIndex from, LogIndex through, long maxBytes) => Slice(from, through, maxBytes, out _);

    /// <summary>As <see cref="Slice(LogIndex, LogIndex, long)"/>, and the payload bytes of the entries returned.</summary>
    public IReadOnlyList<LogEntry> Slice(LogIndex from, LogIndex through, long maxBytes, out long bytes)
    {
        Invariant.Assert(from > BaseIndex, $"slice from {from} at or below base {BaseIndex}");
        bytes = 0;
        through = LogIndex.Min(through, LastIndex);
        if (from > through)
        {
            return [];
        }
        var start = Offset(from);
        var end = Offset(through);
        var count = 0;
        for (var i = start; i <= end; i++)
        {
            var size = _entries[i].SizeBytes;
            if (count > 0 && bytes + size > maxBytes)
            {
                break;
            }
            bytes += size;
            count++;
        }
        return _entries.GetRange(start, count);
    }

    /// <summary>The payload bytes of the entries in [from, through] that this log holds, counted in place.</summary>
    public long BytesBetween(LogIndex from, LogIndex through)
    {
        from = LogIndex.Max(from, FirstIndex);
        through = LogIndex.Min(through, LastIndex);
        long bytes = 0;
        for (var index = from; index <= through; index = index.Next())
        {
            bytes += _entries[Offset(index)].SizeBytes;
        }
        return bytes;
    }

    /// <summary>Raft §5.4.1: is a candidate's log (lastIndex, lastTerm) at least as up to date as ours?</summary>
    public bool IsUpToDate(LogIndex lastIndex, Term lastTerm) =>
        lastTerm > LastTerm || (lastTerm == LastTerm && lastIndex >= LastIndex);

    /// <summary>
    /// The follower's side of AppendEntries (Raft §5.3). Returns false if the log has no entry (prevIndex, prevTerm).
    /// Otherwise skips entries it already holds, cuts the log at the first conflict, appends the rest, and returns true.
    /// </summary>
    public bool TryAppend(LogIndex prevIndex, Term prevTerm, IReadOnlyList<LogEntry> entries)
    {
        var skip = 0;
        if (prevIndex < BaseIndex)
        {
            // Entries at or below our base are committed and compacted here; committed entries match the leader's.
            skip = (int)Math.Min((ulong)entries.Count, BaseIndex.Value - prevIndex.Value);
            if (skip > 0)
            {
                Invariant.Assert(entries[skip - 1].Index != BaseIndex || entries[skip - 1].Term == BaseTerm,
                    $"leader's entry {BaseIndex} disagrees with our compacted base term {BaseTerm}");
            }
            prevIndex = BaseIndex;
            prevTerm = BaseTerm;
        }
        else if (!Matches(prevIndex, prevTerm))
        {
            return false;
        }

#if MUTANT_TRUNCATE_COMMITTED
        if (prevIndex < LastIndex && entries.Count > skip)
        {
            TruncateFrom(prevIndex.Next());
        }
#endif
        for (var i = skip; i < entries.Count; i++)
        {
            var entry = entries[i];
            Invariant.Assert(entry.Index == prevIndex.Plus(i + 1), "entries in an AppendEntries are contiguous");
            var existing = TermAt(entry.Index);
            if (existing == entry.Term)
            {
                continue;
            }
            if (existing is not null)
            {
                // Raft §5.3: a conflicting entry and everything after it go. Committed entries never conflict.
                Invariant.Assert(entry.Index > Committed, $"conflict at {entry.Index} at or below commit {Committed}");
                TruncateFrom(entry.Index);
            }
            for (var j = i; j < entries.Count; j++)
            {
                Append(entries[j]);
            }
            break;
        }
        return true;
    }

    /// <summary>Appends one entry at the end (the leader's own proposals, or a follower's accepted suffix).</summary>
    public void Append(LogEntry entry)
    {
        Invariant.Assert(entry.Index == LastIndex.Next(), $"append of {entry.Index} after {LastIndex}");
        Invariant.Assert(entry.Term >= LastTerm, $"append of term {entry.Term} after {LastTerm}");
        _entries.Add(entry);
        if (entry.Kind == EntryKind.Config)
        {
            _configs.Add((entry.Index, ClusterConfig.Decode(entry.Data.Span)));
        }
    }

    private void TruncateFrom(LogIndex index)
    {
        Invariant.Assert(index > Committed && index > BaseIndex, $"truncate at {index} with commit {Committed}");
        _entries.RemoveRange(Offset(index), _entries.Count - Offset(index));
        _configs.RemoveAll(c => c.Index >= index);
        _unpersistedFrom = LogIndex.Min(_unpersistedFrom, index);
        Persisted = LogIndex.Min(Persisted, index.Previous());
    }

    /// <summary>
    /// The hint for a refused AppendEntries: our term at <paramref name="prevIndex"/> and the first index of that term,
    /// or (last + 1, term 0) if our log is shorter.
    /// </summary>
    public (LogIndex Index, Term Term) ConflictHint(LogIndex prevIndex)
    {
        if (prevIndex > LastIndex)
        {
            return (LastIndex.Next(), Term.Zero);
        }
        var term = TermAt(prevIndex) ?? BaseTerm;
        var first = prevIndex;
        while (first.Previous() > BaseIndex && TermAt(first.Previous()) == term)
        {
            first = first.Previous();
        }
        return (first, term);
    }

    /// <summary>The last index holding <paramref name="term"/>, or null if this log has no entry of that term.</summary>
    public LogIndex? LastIndexOfTerm(Term term)
    {
        for (var i = _entries.Count - 1; i >= 0; i--)
        {
            if (_entries[i].Term == term)
            {
                return _entries[i].Index;
            }
            if (_entries[i].Term < term)
            {
                return null;
            }
        }
        return BaseTerm == term ? BaseIndex : null;
    }

    public void CommitTo(LogIndex index)
    {
        if (index <= Committed)
        {
#if MUTANT_COMMIT_BACKWARDS
            // Mutant: the commit index follows whatever the leader says, even when it is lower.
            Committed = index;
#endif
            return; // commit never decreases
        }
        Invariant.Assert(index <= LastIndex, $"commit {index} beyond last index {LastIndex}: was the log lost?");
        Committed = index;
    }

    /// <summary>Entries a Ready must hand to storage: everything not yet handed over.</summary>
    public IReadOnlyList<LogEntry> Unpersisted() =>
        _unpersistedFrom > LastIndex ? [] : _entries.GetRange(Offset(_unpersistedFrom), LastIndex.CountFrom(_unpersistedFrom));

    public bool HasUnpersisted => _unpersistedFrom <= LastIndex;

    /// <summary>Storage made everything through (index, term) durable.</summary>
    public void PersistedTo(LogIndex index, Term term)
    {
        if (!Matches(index, term))
        {
            return; // cut and replaced since the Ready was taken
        }
        Persisted = LogIndex.Max(Persisted, index);
        _unpersistedFrom = LogIndex.Max(_unpersistedFrom, index.Next());
    }

    /// <summary>Committed, persisted entries not yet applied, at most <paramref name="maxBytes"/> (at least one).</summary>
    public IReadOnlyList<LogEntry> ToApply(long maxBytes)
    {
#if MUTANT_APPLY_UNCOMMITTED
        // Mutant: entries are applied once persisted, committed or not.
        var through = Persisted;
#else
        var through = LogIndex.Min(Committed, Persisted);
#endif
        return through > Applied ? Slice(Applied.Next(), through, maxBytes) : [];
    }

#if MUTANT_APPLY_UNCOMMITTED
    public bool HasToApply => Persisted > Applied && PendingSnapshot is null;
#else
    public bool HasToApply => LogIndex.Min(Committed, Persisted) > Applied && PendingSnapshot is null;
#endif

    public void AppliedTo(LogIndex index)
    {
        Invariant.Assert(index >= Applied, $"applied went back from {Applied} to {index}");
        Invariant.Assert(index <= Committed && index <= Persisted, $"applied {index} beyond commit {Committed} or persisted {Persisted}");
        Applied = index;
    }

    /// <summary>Replaces the whole log with a snapshot received from the leader (Raft §7); the next Ready installs it.</summary>
    public void RestoreFromSnapshot(SnapshotMetadata snapshot)
    {
        Invariant.Assert(snapshot.Index > Committed, $"restoring snapshot {snapshot.Index} at or below commit {Committed}");
        _entries.Clear();
        _configs.Clear();
        _baseConfig = snapshot.Config;
        BaseIndex = snapshot.Index;
        BaseTerm = snapshot.Term;
        Committed = snapshot.Index;
        _unpersistedFrom = snapshot.Index.Next();
        PendingSnapshot = snapshot;
        LatestSnapshot = snapshot;
    }

    /// <summary>The loop installed <see cref="PendingSnapshot"/>: it is persisted and the state machine holds it.</summary>
    public void SnapshotInstalled(SnapshotMetadata snapshot)
    {
        Invariant.Assert(PendingSnapshot == snapshot, "installed snapshot is the pending one");
        PendingSnapshot = null;
        Persisted = LogIndex.Max(Persisted, snapshot.Index);
        Applied = LogIndex.Max(Applied, snapshot.Index);
    }

    /// <summary>A snapshot of the applied state was written; entries up to <paramref name="compactTo"/> may go.</summary>
    public void SnapshotTaken(SnapshotMetadata snapshot, LogIndex compactTo)
    {
        Invariant.Assert(snapshot.Index <= Applied, $"snapshot {snapshot.Index} beyond applied {Applied}");
        Invariant.Assert(Matches(snapshot.Index, snapshot.Term) || snapshot.Index < BaseIndex, "snapshot term matches the log");
        if (LatestSnapshot is null || snapshot.Index > LatestSnapshot.Index)
        {
            LatestSnapshot = snapshot;
        }
        compactTo = LogIndex.Min(compactTo, snapshot.Index);
        if (compactTo <= BaseIndex)
        {
            return;
        }
        var term = TermAt(compactTo);
        Invariant.Assert(term is not null);
        _baseConfig = ConfigAt(compactTo);
        _configs.RemoveAll(c => c.Index <= compactTo);
        _entries.RemoveRange(0, compactTo.CountFrom(FirstIndex));
        BaseIndex = compactTo;
        BaseTerm = term.Value;
    }

    private int Offset(LogIndex index) => checked((int)(index.Value - BaseIndex.Value - 1));
}
