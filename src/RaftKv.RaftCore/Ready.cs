namespace RaftKv.RaftCore;

public enum Role
{
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

public enum ReadStatus
{
    /// <summary>Leadership was confirmed by a quorum: the read may be served once applied reaches <see cref="ReadState.Index"/>.</summary>
    Confirmed,

    /// <summary>This node is not (or no longer) the leader; <see cref="ReadState.LeaderHint"/> names the leader it knows.</summary>
    NotLeader,
}

/// <summary>The outcome of a ReadIndex request (Raft dissertation §6.4).</summary>
public readonly record struct ReadState(ulong RequestId, ReadStatus Status, LogIndex Index, NodeId LeaderHint);

public enum ProposeStatus
{
    Accepted,
    NotLeader,

    /// <summary>The leader refused it for now: a leadership transfer is under way or too much is uncommitted.</summary>
    Dropped,

    /// <summary>A configuration change refused for now: another is in flight, or the learner to promote has not caught up.</summary>
    Busy,

    /// <summary>A configuration change that can never be made as asked: an unknown node, a node already a member, the last voter.</summary>
    Invalid,
}

/// <summary>What became of a proposal: accepted at (Index, Term), or refused with a reason and the leader this node knows.</summary>
public readonly record struct ProposeResult(ProposeStatus Status, LogIndex Index, Term Term, NodeId LeaderHint, string? Reason = null)
{
    public static ProposeResult NotLeader(NodeId leader) => new(ProposeStatus.NotLeader, LogIndex.Zero, Term.Zero, leader, "not the leader");

    public static ProposeResult Dropped(NodeId leader, string reason) => new(ProposeStatus.Dropped, LogIndex.Zero, Term.Zero, leader, reason);

    public static ProposeResult Refused(ProposeStatus status, NodeId leader, string reason) => new(status, LogIndex.Zero, Term.Zero, leader, reason);
}

/// <summary>The volatile facts a host shows and logs: role, term, leader.</summary>
public readonly record struct SoftState(Role Role, Term Term, NodeId Leader);

/// <summary>
/// The work a <see cref="RaftNode"/> hands to its caller. Handle it in this order (docs/architecture.md):
/// <list type="number">
/// <item><see cref="Messages"/> may be sent at once (the leader's appends: it replicates in parallel with its own fsync);</item>
/// <item>install <see cref="Snapshot"/>, append <see cref="Entries"/> (cutting any suffix they replace), store <see cref="HardState"/>,
/// and fsync when <see cref="MustSync"/>;</item>
/// <item>then send <see cref="MessagesAfterPersist"/> (votes and acknowledgements promise what was just persisted);</item>
/// <item>apply <see cref="CommittedEntries"/> in order and serve <see cref="ReadStates"/> once applied reaches their index;</item>
/// <item>call <see cref="RaftNode.Advance"/> with this Ready.</item>
/// </list>
/// </summary>
public sealed class Ready
{
    public required SoftState SoftState { get; init; }

    /// <summary>Null when unchanged since the last Ready.</summary>
    public HardState? HardState { get; init; }

    /// <summary>Entries to append to the log; the first one's index says where the stored log must be cut.</summary>
    public required IReadOnlyList<LogEntry> Entries { get; init; }

    /// <summary>A snapshot received from the leader to install before the entries; null when none.</summary>
    public SnapshotMetadata? Snapshot { get; init; }

    /// <summary>Entries, a snapshot, or a new term or vote must be durable before <see cref="MessagesAfterPersist"/> go out.</summary>
    public bool MustSync { get; init; }

    public required IReadOnlyList<Message> Messages { get; init; }

    public required IReadOnlyList<Message> MessagesAfterPersist { get; init; }

    /// <summary>Committed entries to apply, in index order; all of them are already persisted on this node.</summary>
    public required IReadOnlyList<LogEntry> CommittedEntries { get; init; }

    public required IReadOnlyList<ReadState> ReadStates { get; init; }
}

/// <summary>A point-in-time view of a node for /status and tests.</summary>
public sealed record RaftStatus(
    NodeId Id,
    Role Role,
    Term Term,
    NodeId Vote,
    NodeId Leader,
    LogIndex Commit,
    LogIndex Applied,
    LogIndex Persisted,
    LogIndex LastIndex,
    Term LastTerm,
    LogIndex FirstIndex,
    LogIndex SnapshotIndex,
    ClusterConfig Config,
    IReadOnlyList<PeerStatus> Peers)
{
    /// <summary>Whether <see cref="Config"/> is committed: no membership change is in flight.</summary>
    public bool ConfigCommitted { get; init; } = true;
}

/// <summary>The leader's view of one follower, copied out of <see cref="Progress"/>.</summary>
public sealed record PeerStatus(NodeId Id, ReplicationState State, LogIndex Match, LogIndex Next, int TicksSinceContact, bool RecentActive);
