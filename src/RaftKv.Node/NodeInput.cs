using RaftKv.RaftCore;

namespace RaftKv.Node;

/// <summary>Everything that reaches the node loop comes as one of these, through its one bounded channel.</summary>
public abstract record NodeInput
{
    private NodeInput()
    {
    }

    public sealed record Propose(ReadOnlyMemory<byte> Data, TaskCompletionSource<ProposalOutcome> Completion) : NodeInput;

    public sealed record ChangeMembership(ConfChange Change, TaskCompletionSource<ProposalOutcome> Completion) : NodeInput;

    /// <summary>A query; with <see cref="Capture"/>, instead of a query the whole applied state is captured (a backup).</summary>
    public sealed record Read(ReadOnlyMemory<byte> Query, bool Linearizable, TaskCompletionSource<ReadOutcome> Completion,
        TaskCompletionSource<CapturedState>? Capture = null) : NodeInput;

    public sealed record Receive(Message Message) : NodeInput;

    /// <summary>
    /// An InstallSnapshot whose bytes were received and checked but not yet made current: <see cref="Staged"/> is committed
    /// only if the core installs the snapshot (its term, leader and index checks passed), else disposed, which deletes it.
    /// </summary>
    public sealed record ReceiveSnapshot(InstallSnapshot Message, ISnapshotWriter Staged) : NodeInput;

    /// <summary>Wakes the loop; the number of ticks is counted apart so that a full channel never loses time.</summary>
    public sealed record Tick : NodeInput
    {
        public static readonly Tick Instance = new();
    }

    /// <summary>A snapshot finished writing in the background, <see cref="Bytes"/> long (or failed, with <see cref="Error"/>).</summary>
    public sealed record SnapshotWritten(SnapshotMetadata Metadata, Exception? Error, long Bytes) : NodeInput;

    public sealed record SnapshotSent(NodeId Peer, bool Succeeded) : NodeInput;

    public sealed record PeerUnreachable(NodeId Peer) : NodeInput;

    public sealed record TransferLeadership(NodeId Target, TaskCompletionSource<bool> Completion) : NodeInput;

    public sealed record GetStatus(TaskCompletionSource<NodeStatus> Completion) : NodeInput;
}

/// <summary>The applied state captured at <see cref="Metadata"/>.Index, to be written off the loop.</summary>
public sealed record CapturedState(SnapshotMetadata Metadata, IStateMachineSnapshot State);

/// <summary>The node as /status shows it: the core's view plus the loop's own facts.</summary>
public sealed record NodeStatus(RaftStatus Raft, int PendingProposals, int PendingReads, long DroppedMessages, string? StorageFailure);
