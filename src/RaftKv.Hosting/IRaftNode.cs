using RaftKv.Node;
using RaftKv.RaftCore;

namespace RaftKv.Hosting;

public enum ReadConsistency
{
    /// <summary>Through the leader's ReadIndex: sees every write acknowledged before the read began.</summary>
    Linearizable,

    /// <summary>On this node, as far as it has applied: may miss recent writes.</summary>
    Stale,
}

/// <summary>
/// The Raft node as an application sees it: propose bytes, read bytes, ask for the node's status, hear of leader changes.
/// Any node takes any request: a follower forwards it to the leader (the bytes go over the peer port unread) and returns
/// the leader's answer. What the bytes mean, and what an answer means to a client, is the application's business.
/// </summary>
public interface IRaftNode
{
    NodeId Id { get; }

    /// <summary>The leader this node knew at its last step; none while unknown.</summary>
    NodeId KnownLeader { get; }

    Term KnownTerm { get; }

    /// <summary>Proposes a command and answers once it is applied (with the state machine's result), or why not.</summary>
    Task<NodeAnswer> ProposeAsync(ReadOnlyMemory<byte> command, CancellationToken cancellationToken = default);

    /// <summary>Runs a query against the state machine: through the leader's ReadIndex, or here on what this node applied.</summary>
    Task<NodeAnswer> ReadAsync(ReadOnlyMemory<byte> query, ReadConsistency consistency, CancellationToken cancellationToken = default);

    /// <summary>
    /// Runs the application's <see cref="ILeaderRequestHandler"/> on the leader (forwarded, unread, if this node does not
    /// lead): for what only the leader's memory or clock can answer and that is not a log entry, such as keeping a lease
    /// alive. A node that leads by its own last knowledge answers; a deposed leader that has not heard yet may too.
    /// </summary>
    Task<NodeAnswer> AskLeaderAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken = default);

    /// <summary>The node's view of itself (and, on the leader, of its followers), from the node loop.</summary>
    Task<NodeStatus> GetStatusAsync(CancellationToken cancellationToken = default);

    /// <summary>Raised on the node loop when this node learns of another leader (or of none): handlers must return at once.</summary>
    event EventHandler<LeaderChangedEventArgs>? LeaderChanged;
}

/// <summary>
/// An application's requests that the leader answers from its own memory or clock, not through the log (registered with
/// <see cref="RaftNodeBuilder.UseLeaderRequests{T}"/>; reached through <see cref="IRaftNode.AskLeaderAsync"/>).
/// </summary>
public interface ILeaderRequestHandler
{
    /// <summary>Answers a request on the leader, off the node loop; must be quick (it runs within the node's request timeout).</summary>
    ValueTask<ReadOnlyMemory<byte>> HandleAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken);
}

public sealed class LeaderChangedEventArgs(NodeId leader, Term term, Role role) : EventArgs
{
    public NodeId Leader { get; } = leader;

    public Term Term { get; } = term;

    /// <summary>This node's role after the change.</summary>
    public Role Role { get; } = role;
}
