using RaftKv.RaftCore;

namespace RaftKv.Node;

public enum ProposalStatus
{
    /// <summary>Committed and applied; <see cref="ProposalOutcome.Result"/> is the state machine's answer, as bytes the application reads.</summary>
    Applied,

    /// <summary>This node does not lead; nothing was appended. Retry at <see cref="ProposalOutcome.LeaderHint"/>.</summary>
    NotLeader,

    /// <summary>Refused before it was appended (transfer in progress, too much uncommitted, too many requests): nothing happened.</summary>
    Rejected,

    /// <summary>Appended, but another entry was committed at its index: it was not applied and never will be.</summary>
    Lost,

    /// <summary>A membership change refused for now (another change is in flight, the learner has not caught up): nothing happened.</summary>
    Conflict,

    /// <summary>A membership change that can never be made as asked (an unknown node, the last voter): nothing happened.</summary>
    Invalid,

    /// <summary>Appended, but this node can no longer tell whether it was applied (it stopped, failed or installed a snapshot over it).</summary>
    Unknown,
}

public sealed record ProposalOutcome(ProposalStatus Status, LogIndex Index, Term Term, ReadOnlyMemory<byte> Result, NodeId LeaderHint, string? Reason)
{
    public static ProposalOutcome Refused(ProposalStatus status, NodeId leader, string reason) =>
        new(status, LogIndex.Zero, Term.Zero, default, leader, reason);
}

public enum ReadOutcomeStatus
{
    Ok,
    NotLeader,

    /// <summary>The node cannot serve it now (too many requests, stopping, storage failed); nothing was read.</summary>
    Unavailable,
}

/// <summary>A read's answer. <see cref="ReadIndex"/> is the commit index a linearizable read waited for (zero for a stale read).</summary>
public sealed record ReadOutcome(ReadOutcomeStatus Status, ReadOnlyMemory<byte> Result, LogIndex ReadIndex, LogIndex AppliedIndex, NodeId LeaderHint, string? Reason);
