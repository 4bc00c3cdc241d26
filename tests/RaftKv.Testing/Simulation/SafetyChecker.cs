using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using RaftKv.RaftCore;

namespace RaftKv.Testing.Simulation;

/// <summary>
/// Checks Raft's safety properties (Raft paper, Figure 3) as a simulation runs, from what it observes of every node:
/// <list type="bullet">
/// <item>election safety: at most one leader per term;</item>
/// <item>log matching: two logs with an entry of the same index and term hold the same entries up to it (checked with a
/// hash chain over each log: same (index, term) must mean the same chain value);</item>
/// <item>leader completeness: a leader of term T holds every entry committed in a term before T (Figure 3: "the leaders
/// for all higher-numbered terms"; a leader of an older term, elected late by a vote that was delayed, may lack entries a
/// later term committed, and can commit nothing: a quorum has moved past its term);</item>
/// <item>state machine safety: no two nodes apply different entries at one index;</item>
/// <item>a leader commits only what a quorum of the configuration in force holds: the newest configuration entry in its log,
/// committed or not (dissertation §4.1), both halves of a joint one. The checker reads configurations from the entries it
/// sees stored, not from the node, and accepts the configuration in force before the step or after it (a change may be
/// appended in the same step, after the commit moved);</item>
/// <item>term, commit and applied never go back within a node's life, and applied never passes commit;</item>
/// <item>a node keeps what it acknowledged: once it told the leader of its term that its log matches the leader's through
/// an index (the promise the leader counts to commit), it holds that entry, unchanged, for as long as it stays in that
/// term, across restarts too (it acknowledged only what it had persisted).</item>
/// </list>
/// Nodes come and go: one that joins starts from an empty store (no entries, no configuration), and a node that left is
/// simply never heard of again.
/// Violations throw <see cref="SafetyViolationException"/>.
/// </summary>
public sealed class SafetyChecker
{
    private readonly Dictionary<(ulong Index, ulong Term), ulong> _chainOfEntry = [];
    private readonly Dictionary<ulong, ulong> _committedChain = [];
    private readonly Dictionary<ulong, (ulong Term, string Data)> _applied = [];
    private readonly HashSet<string> _appliedData = new(StringComparer.Ordinal);
    private readonly HashSet<string> _notApplied = new(StringComparer.Ordinal);
    private readonly Dictionary<ulong, NodeId> _leaderOfTerm = [];
    private readonly Dictionary<NodeId, NodeLog> _logs = [];
    private readonly Dictionary<NodeId, Watermarks> _watermarks = [];
    private readonly Dictionary<NodeId, Promise> _promises = [];
    // By term: the highest index first seen committed by a node in that term, and its chain value. The term a node is in
    // when it first shows an index committed is at or after the term of the leader that committed it (a follower learns a
    // commit only from the leader of its own term, a restart or a snapshot only later), so "committed before term T" read
    // from here never claims too much.
    private readonly Dictionary<ulong, (LogIndex Index, ulong Chain)> _maxCommittedInTerm = [];

    public int LeadersElected => _leaderOfTerm.Count;

    public int AppliedEntries => _applied.Count;

    /// <summary>A node (re)started with this state: rebuild its hash chain and check it against everyone's.</summary>
    public void NodeLoaded(NodeId node, PersistentState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var log = new NodeLog(state.BaseIndex, BaseChain(node, state.BaseIndex, state.BaseTerm), state.Snapshot?.Config);
        _logs[node] = log;
        _watermarks[node] = new Watermarks();
        if (state.Entries.Count > 0)
        {
            Appended(node, state.Entries);
        }
    }

    /// <summary>A node stored these entries (cutting anything from the first one's index on).</summary>
    public void Appended(NodeId node, IReadOnlyList<LogEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        var log = _logs[node];
        var first = entries[0].Index;
        log.CutFrom(first);
        var previous = log.ChainAt(first.Previous());
        foreach (var entry in entries)
        {
            var chain = Chain(previous, entry);
            var key = (entry.Index.Value, entry.Term.Value);
            if (_chainOfEntry.TryGetValue(key, out var known) && known != chain)
            {
                throw new SafetyViolationException(
                    $"log matching: {node} holds entry {entry.Index}/{entry.Term} after a history that differs from another node's entry {entry.Index}/{entry.Term}");
            }
            _chainOfEntry[key] = chain;
            log.Add(chain, entry.Kind == EntryKind.Config ? ClusterConfig.Decode(entry.Data.Span) : null);
            previous = chain;
        }
    }

    /// <summary>A node replaced its log with a snapshot from the leader.</summary>
    public void SnapshotInstalled(NodeId node, SnapshotMetadata snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        _logs[node] = new NodeLog(snapshot.Index, BaseChain(node, snapshot.Index, snapshot.Term), snapshot.Config);
    }

    /// <summary>
    /// A node acknowledged an append (or a snapshot) to the leader of <paramref name="term"/>: its log matches the leader's
    /// through <paramref name="match"/>. Its next acknowledgement in that term may only reach further.
    /// </summary>
    public void Acknowledged(NodeId node, Term term, LogIndex match)
    {
        var log = _logs[node];
        if (match > log.LastIndex)
        {
            throw new SafetyViolationException($"{node} acknowledged {match} in term {term.Value}, but its store ends at {log.LastIndex}");
        }
        if (match <= log.BaseIndex)
        {
            return; // within its snapshot
        }
        if (_promises.TryGetValue(node, out var promise) && promise.Term == term && promise.Index >= match)
        {
            return;
        }
        _promises[node] = new Promise(term, match, log.ChainAt(match));
    }

    /// <summary>A node applied an entry to its state machine.</summary>
    public void Applied(NodeId node, LogEntry entry)
    {
        var data = Encoding.UTF8.GetString(entry.Data.Span);
        if (_applied.TryGetValue(entry.Index.Value, out var earlier))
        {
            if (earlier.Term != entry.Term.Value || earlier.Data != data)
            {
                throw new SafetyViolationException(
                    $"state machine safety: {node} applied {entry.Index}/{entry.Term} '{data}' where another node applied {entry.Index}/t{earlier.Term} '{earlier.Data}'");
            }
            return;
        }
        if (_notApplied.Contains(data))
        {
            throw new SafetyViolationException($"{node} applied '{data}' at {entry.Index}, which its client was told was never applied");
        }
        _applied[entry.Index.Value] = (entry.Term.Value, data);
        _appliedData.Add(data);
    }

    /// <summary>A client was told its write was not applied (refused, not leader, or overwritten): it must never be.</summary>
    public void ToldNotApplied(string data)
    {
        if (_appliedData.Contains(data))
        {
            throw new SafetyViolationException($"a client was told '{data}' was not applied, but it was");
        }
        _notApplied.Add(data);
    }

    /// <summary>After every step of a node: the per-node and cross-node checks.</summary>
    public void AfterStep(NodeId node, RaftNode raft)
    {
        ArgumentNullException.ThrowIfNull(raft);
        var marks = _watermarks[node];
        CheckWatermarks(node, raft, marks);

        var log = _logs[node];
        if (raft.LastIndex != log.LastIndex)
        {
            throw new SafetyViolationException($"{node}: its log ends at {raft.LastIndex} but its store at {log.LastIndex} after a step");
        }
        if (_promises.TryGetValue(node, out var promise) && promise.Term == raft.Term && promise.Index > log.BaseIndex
            && (promise.Index > log.LastIndex || log.ChainAt(promise.Index) != promise.Chain))
        {
            throw new SafetyViolationException(
                $"{node} acknowledged {promise.Index} to the leader of term {promise.Term.Value} and, still in that term, no longer holds it (its log: ({log.BaseIndex}, {log.LastIndex}])");
        }

        // Committed entries are the same everywhere and never change: every index this node newly committed must hold
        // what any other node committed there.
        var commit = raft.CommitIndex;
        for (var index = LogIndex.Max(marks.Commit.Next(), log.BaseIndex); index <= commit; index = index.Next())
        {
            var chain = log.ChainAt(index);
            if (_committedChain.TryGetValue(index.Value, out var known))
            {
                if (known != chain)
                {
                    throw new SafetyViolationException($"{node} committed a different entry at {index} than another node did: a committed entry changed");
                }
            }
            else
            {
                _committedChain[index.Value] = chain;
                if (!_maxCommittedInTerm.TryGetValue(raft.Term.Value, out var highest) || index > highest.Index)
                {
                    _maxCommittedInTerm[raft.Term.Value] = (index, chain);
                }
            }
        }

        // A leader that stayed leader through the step and moved its commit: a quorum of its configuration holds the entry.
        if (raft.Role == Role.Leader && marks.Role == Role.Leader && raft.Term == marks.Term && commit > marks.Commit)
        {
            var chain = log.ChainAt(commit);
            bool Holds(NodeId id) => _logs.TryGetValue(id, out var other)
                && (commit <= other.BaseIndex || (commit <= other.LastIndex && other.ChainAt(commit) == chain));
            var before = marks.Config;
            var after = log.ConfigInForce;
            if (after is not null && !after.HasQuorum(Holds) && (before is null || !before.HasQuorum(Holds)))
            {
                var holders = string.Join(' ', _logs.Keys.Where(Holds).Order());
                throw new SafetyViolationException(
                    $"{node} committed {commit} in term {raft.Term.Value}, held only by ({holders}): no quorum of its configuration in force ({after})");
            }
        }

        if (raft.Role == Role.Leader)
        {
            var term = raft.Term.Value;
            if (_leaderOfTerm.TryGetValue(term, out var other) && other != node)
            {
                throw new SafetyViolationException($"election safety: {other} and {node} both led term {term}");
            }
            if (!_leaderOfTerm.ContainsKey(term) || marks.Role != Role.Leader)
            {
                _leaderOfTerm[term] = node;
                // Leader completeness: every entry committed in an earlier term is in its log.
                var (committedIndex, committedChain, committedTerm) = HighestCommittedBefore(term);
                if (committedIndex > raft.LastIndex)
                {
                    throw new SafetyViolationException(
                        $"leader completeness: {node} leads term {term} with a log ending at {raft.LastIndex}, but {committedIndex} was committed in term {committedTerm}");
                }
                if (committedIndex > LogIndex.Zero && committedIndex >= log.BaseIndex && log.ChainAt(committedIndex) != committedChain)
                {
                    throw new SafetyViolationException(
                        $"leader completeness: {node} leads term {term} without the entry at {committedIndex} committed in term {committedTerm}");
                }
            }
        }

        marks.Term = raft.Term;
        marks.Commit = raft.CommitIndex;
        marks.Applied = raft.AppliedIndex;
        marks.Role = raft.Role;
        marks.Config = log.ConfigInForce;
    }

    /// <summary>The highest index committed in a term before <paramref name="term"/> (zero if none), its chain and that term.</summary>
    private (LogIndex Index, ulong Chain, ulong Term) HighestCommittedBefore(ulong term)
    {
        (LogIndex Index, ulong Chain, ulong Term) highest = (LogIndex.Zero, 0, 0);
        foreach (var (committedTerm, (index, chain)) in _maxCommittedInTerm)
        {
            if (committedTerm < term && index > highest.Index)
            {
                highest = (index, chain, committedTerm);
            }
        }
        return highest;
    }

    /// <summary>
    /// After a step whose Ready the loop held back (Buggify's MergeWithNextTurn): until its next turn the core is ahead of
    /// its store (entries appended, a commit learned, a term or vote taken, none of it persisted or sent), so only what
    /// needs no store is checked now: term, commit and applied never go back, and applied never passes commit. The
    /// watermarks stay where the last full step left them, so that the next full step checks everything the two turns
    /// did together.
    /// </summary>
    public void AfterHeldStep(NodeId node, RaftNode raft)
    {
        ArgumentNullException.ThrowIfNull(raft);
        var marks = _watermarks[node];
        CheckWatermarks(node, raft, marks);
    }

    /// <summary>Term, commit and applied never go back within a node's life, and applied never passes commit.</summary>
    private static void CheckWatermarks(NodeId node, RaftNode raft, Watermarks marks)
    {
        if (raft.Term < marks.Term)
        {
            throw new SafetyViolationException($"{node}: term went back from {marks.Term} to {raft.Term}");
        }
        if (raft.CommitIndex < marks.Commit)
        {
            throw new SafetyViolationException($"{node}: commit went back from {marks.Commit} to {raft.CommitIndex}");
        }
        if (raft.AppliedIndex < marks.Applied)
        {
            throw new SafetyViolationException($"{node}: applied went back from {marks.Applied} to {raft.AppliedIndex}");
        }
        if (raft.AppliedIndex > raft.CommitIndex)
        {
            throw new SafetyViolationException($"{node}: applied {raft.AppliedIndex} passed commit {raft.CommitIndex}");
        }
    }

    /// <summary>The data applied at <paramref name="index"/>, if any node applied it.</summary>
    public string? AppliedAt(LogIndex index) => _applied.TryGetValue(index.Value, out var applied) ? applied.Data : null;

    private ulong BaseChain(NodeId node, LogIndex index, Term term)
    {
        if (index == LogIndex.Zero)
        {
            return 0;
        }
        if (!_chainOfEntry.TryGetValue((index.Value, term.Value), out var chain))
        {
            throw new SafetyViolationException($"{node} starts from {index}/{term}, an entry no node ever stored");
        }
        return chain;
    }

    private static ulong Chain(ulong previous, LogEntry entry)
    {
        Span<byte> head = stackalloc byte[25];
        BinaryPrimitives.WriteUInt64LittleEndian(head, previous);
        BinaryPrimitives.WriteUInt64LittleEndian(head[8..], entry.Index.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(head[16..], entry.Term.Value);
        head[24] = (byte)entry.Kind;
        var hasher = new XxHash64();
        hasher.Append(head);
        hasher.Append(entry.Data.Span);
        return hasher.GetCurrentHashAsUInt64();
    }

    /// <summary>The furthest a node acknowledged in <see cref="Term"/>, and the chain value of its log there.</summary>
    private sealed record Promise(Term Term, LogIndex Index, ulong Chain);

    private sealed class Watermarks
    {
        public Term Term { get; set; }

        public LogIndex Commit { get; set; }

        public LogIndex Applied { get; set; }

        public Role Role { get; set; }

        /// <summary>The configuration in force in the node's stored log after its last step.</summary>
        public ClusterConfig? Config { get; set; }
    }

    /// <summary>
    /// One node's log as a hash chain: chain[i] covers every entry up to index BaseIndex + 1 + i. It keeps the configuration
    /// entries too, with the base's (a snapshot's) under them: null for a store that holds none (a node waiting to be added).
    /// </summary>
    private sealed class NodeLog(LogIndex baseIndex, ulong baseChain, ClusterConfig? baseConfig)
    {
        private readonly List<ulong> _chains = [];
        private readonly List<(LogIndex Index, ClusterConfig Config)> _configs = [];

        public LogIndex BaseIndex { get; } = baseIndex;

        public LogIndex LastIndex => BaseIndex.Plus(_chains.Count);

        /// <summary>The newest configuration in the log, committed or not; else the base's.</summary>
        public ClusterConfig? ConfigInForce => _configs.Count > 0 ? _configs[^1].Config : baseConfig;

        public ulong ChainAt(LogIndex index)
        {
            if (index == BaseIndex)
            {
                return baseChain;
            }
            if (index < BaseIndex || index > LastIndex)
            {
                throw new SafetyViolationException($"asked for the entry at {index} of a log holding ({BaseIndex}, {LastIndex}]");
            }
            return _chains[(int)(index.Value - BaseIndex.Value - 1)];
        }

        public void CutFrom(LogIndex index)
        {
            if (index <= BaseIndex || index.Value > LastIndex.Value + 1)
            {
                throw new SafetyViolationException($"a store appended at {index} to a log holding ({BaseIndex}, {LastIndex}]");
            }
            var keep = (int)(index.Value - BaseIndex.Value - 1);
            _chains.RemoveRange(keep, _chains.Count - keep);
            _configs.RemoveAll(c => c.Index >= index);
        }

        public void Add(ulong chain, ClusterConfig? config)
        {
            _chains.Add(chain);
            if (config is not null)
            {
                _configs.Add((LastIndex, config));
            }
        }
    }
}

public sealed class SafetyViolationException : Exception
{
    public SafetyViolationException(string message) : base(message)
    {
    }

    public SafetyViolationException()
    {
    }

    public SafetyViolationException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
