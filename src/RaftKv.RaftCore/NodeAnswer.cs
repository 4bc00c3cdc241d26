namespace RaftKv.RaftCore;

/// <summary>How a request to a node ended, in Raft's terms. What it means to a client (an HTTP status, say) is the application's to decide.</summary>
public enum AnswerStatus
{
    /// <summary>Applied (a write) or answered (a read): <see cref="NodeAnswer.Result"/> holds the state machine's bytes.</summary>
    Ok,

    /// <summary>No leader is known (an election may be under way), or leadership moved while the request travelled. Nothing happened.</summary>
    NoLeader,

    /// <summary>The node cannot serve it now (overloaded, transferring leadership, storage failed, leader unreachable for a read). Nothing happened.</summary>
    Unavailable,

    /// <summary>The write was appended, but another entry was committed at its index: it was not applied and never will be.</summary>
    Lost,

    /// <summary>The write may or may not be applied (timed out, the node stopped, the leader stopped answering). Retry it with its session.</summary>
    Unknown,

    /// <summary>A read had no answer in time. Reads change nothing.</summary>
    TimedOut,

    /// <summary>The command is larger than the log or the peer protocol takes; it was not appended and never will be.</summary>
    TooLarge,

    /// <summary>A membership change or leadership transfer refused for now (another change in flight, a learner not caught up). Nothing happened.</summary>
    Conflict,

    /// <summary>A membership change or leadership transfer that can never be made as asked (an unknown node, the last voter). Nothing happened.</summary>
    Invalid,
}

/// <summary>
/// The answer to a proposal or a read: its status, the state machine's result bytes (opaque to the runtime and the peer
/// protocol), the log index it was applied at (a read: the applied index it was answered at), the term, the leader as
/// far as the answering node knows, and a reason when it did not succeed.
/// </summary>
public sealed record NodeAnswer(AnswerStatus Status, ReadOnlyMemory<byte> Result, LogIndex Index, Term Term, NodeId Leader, string? Reason)
{
    public static NodeAnswer Failed(AnswerStatus status, NodeId leader, string reason) =>
        new(status, ReadOnlyMemory<byte>.Empty, LogIndex.Zero, Term.Zero, leader, reason);
}
