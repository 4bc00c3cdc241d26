using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RaftKv.RaftCore;

namespace RaftKv.Node;

/// <summary>
/// The node loop: the one owner of a <see cref="RaftNode"/>. Everything reaches it through one bounded channel; it drains
/// what is waiting into one step (so proposals that arrive together share one append and one fsync), then handles every
/// Ready in <see cref="HandleReady"/>, which is where the order of persisting, sending and applying is written down.
/// The same class runs in the server (<see cref="RunAsync"/>) and in the simulator (<see cref="ProcessPending"/>).
/// Public methods other than those two may be called from any thread.
/// </summary>
public sealed partial class RaftLoop
{
    private readonly RaftNode _node;
    private readonly ILogStore _store;
    private readonly ISnapshotStore _snapshots;
    private readonly ITransport _transport;
    private readonly IStateMachine _stateMachine;
    private readonly IWorkScheduler _background;
    private readonly NodeLoopOptions _options;
    private readonly IRaftLoopObserver _observer;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly IBuggify? _buggify;
    private readonly Channel<NodeInput> _inbox;
    private readonly List<NodeInput> _batch = [];
    private readonly List<(SnapshotMetadata Metadata, ISnapshotWriter Writer)> _stagedSnapshots = [];

    // Proposals appended to the log and not yet resolved, by index. Only the loop touches these.
    private readonly SortedDictionary<LogIndex, PendingProposal> _proposals = [];

    // A membership change that applied as a joint configuration: it completes when the configuration leaving it applies.
    private PendingProposal? _awaitingLeaveJoint;

    // The configuration last reported to the observer.
    private ClusterConfig? _reportedConfig;

    // Linearizable reads waiting for their ReadIndex round, by request id; then for applied to reach their index.
    private readonly Dictionary<ulong, NodeInput.Read> _readsAwaitingIndex = [];
    private readonly Queue<(LogIndex Index, NodeInput.Read Read)> _readsAwaitingApply = new();
    private ulong _nextReadId;

    // Requests admitted and not yet answered (proposals and reads), bounded by MaxPendingRequests.
    private int _pendingRequests;
    private int _pendingTicks;
    private long _droppedMessages;

    private bool _snapshotInProgress;
    // Our snapshot whose file is written, waiting for the batch's Readies: the log is compacted behind it only then.
    private NodeInput.SnapshotWritten? _snapshotWritten;
    // The snapshot in progress was taken early by IBuggify: it compacts every entry it covers.
    private bool _snapshotCompactsAll;

    // IBuggify's state; without one (every host) it stays at rest. Turns are counted to tell what an earlier turn held
    // from what this one holds.
    private long _turn;
    // The last turn took no Ready (MergeWithNextTurn): its work leaves with the next turn's.
    private bool _readyHeldBack;
    // Votes and acknowledgements persisted but not sent yet (AcknowledgeLate), in order, held in turn _lateHeldInTurn.
    private readonly List<Message> _lateMessages = [];
    private long _lateHeldInTurn;
    // This turn appended or applied a configuration, sent a snapshot, or won an election (SnapshotAtAwkwardMoment).
    private bool _awkwardMoment;
    private LogIndex _lastSnapshotIndex;
    private long _bytesAppliedSinceSnapshot;
    private long _lastSnapshotBytes; // the size of the last snapshot this loop wrote; 0 until it writes one
    private long _snapshotStarted;
    private string? _storageFailure;
    private SoftState _softState;

    public RaftLoop(
        RaftNode node,
        ILogStore store,
        ISnapshotStore snapshots,
        ITransport transport,
        IStateMachine stateMachine,
        NodeLoopOptions options,
        IWorkScheduler? background = null,
        IRaftLoopObserver? observer = null,
        ILogger? logger = null,
        TimeProvider? time = null,
        IBuggify? buggify = null)
    {
        ArgumentNullException.ThrowIfNull(node);
        ArgumentNullException.ThrowIfNull(options);
        var problems = options.Validate().ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentException("invalid node loop options: " + string.Join("; ", problems), nameof(options));
        }
        _node = node;
        _store = store ?? throw new ArgumentNullException(nameof(store));
        _snapshots = snapshots ?? throw new ArgumentNullException(nameof(snapshots));
        _transport = transport ?? throw new ArgumentNullException(nameof(transport));
        _stateMachine = stateMachine ?? throw new ArgumentNullException(nameof(stateMachine));
        _options = options;
        _background = background ?? ThreadPoolWorkScheduler.Instance;
        _observer = observer ?? NullRaftLoopObserver.Instance;
        _logger = logger ?? NullLogger.Instance;
        _time = time ?? TimeProvider.System;
        _buggify = buggify;
        _inbox = Channel.CreateBounded<NodeInput>(new BoundedChannelOptions(options.InboxCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _lastSnapshotIndex = node.LatestSnapshot?.Index ?? LogIndex.Zero;
        _softState = node.SoftState;
        Publish(_softState);
        if (node.LatestSnapshot is { } snapshot)
        {
            // The core starts applying after its newest snapshot: the state machine starts from that snapshot.
            using var stream = snapshots.OpenRead(snapshot);
            stateMachine.Restore(stream);
        }
    }

    public NodeId Id => _node.Id;

    // The soft state as of the last Ready, for callers on other threads (routing a request to the leader).
    private long _publishedLeader;
    private int _publishedRole;
    private long _publishedTerm;

    /// <summary>The leader this node knew at its last step (may be stale by one step); none if unknown.</summary>
    public NodeId KnownLeader => new((ulong)Interlocked.Read(ref _publishedLeader));

    public Role KnownRole => (Role)Volatile.Read(ref _publishedRole);

    public Term KnownTerm => new((ulong)Interlocked.Read(ref _publishedTerm));

    /// <summary>Messages dropped because the inbox was full (Raft tolerates loss; the count shows overload).</summary>
    public long DroppedMessages => Interlocked.Read(ref _droppedMessages);

    /// <summary>
    /// Whether the last turn held its Ready back (<see cref="BuggifyPoint.MergeWithNextTurn"/>): until the next turn the
    /// core holds entries and state that its store does not, and nothing of them has left. Always false without an
    /// <see cref="IBuggify"/>. Read it between turns (the simulator's checker does).
    /// </summary>
    public bool HoldsReadyBack => _readyHeldBack;

    // ---------------------------------------------------------------- inputs, from any thread

    /// <summary>Proposes a command. The task completes once the entry is applied (or it is known that it will not be).</summary>
    public Task<ProposalOutcome> ProposeAsync(ReadOnlyMemory<byte> data)
    {
        var completion = new TaskCompletionSource<ProposalOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!Admit())
        {
            completion.SetResult(ProposalOutcome.Refused(ProposalStatus.Rejected, NodeId.None, "too many requests in flight"));
        }
        else if (!_inbox.Writer.TryWrite(new NodeInput.Propose(data, completion)))
        {
            Interlocked.Decrement(ref _pendingRequests);
            completion.SetResult(ProposalOutcome.Refused(ProposalStatus.Rejected, NodeId.None, "node inbox full"));
        }
        return completion.Task;
    }

    /// <summary>
    /// Runs <paramref name="query"/> against the state machine. Linearizable reads go through ReadIndex on the leader and
    /// run once applied reaches the confirmed commit index; stale reads run at once on whatever this node has applied.
    /// </summary>
    public Task<ReadOutcome> ReadAsync(ReadOnlyMemory<byte> query, bool linearizable) => ReadAsync(query, linearizable, capture: null);

    /// <summary>
    /// Captures the whole applied state for a backup: after a ReadIndex round when <paramref name="linearizable"/> (so it
    /// holds every write acknowledged before the call), else at once. The capture is written off the loop by the caller.
    /// </summary>
    public async Task<(ReadOutcome Outcome, CapturedState? State)> CaptureAsync(bool linearizable)
    {
        var capture = new TaskCompletionSource<CapturedState>(TaskCreationOptions.RunContinuationsAsynchronously);
        var outcome = await ReadAsync(default, linearizable, capture).ConfigureAwait(false);
        return (outcome, capture.Task.IsCompletedSuccessfully ? capture.Task.Result : null);
    }

    private Task<ReadOutcome> ReadAsync(ReadOnlyMemory<byte> query, bool linearizable, TaskCompletionSource<CapturedState>? capture)
    {
        var completion = new TaskCompletionSource<ReadOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!Admit())
        {
            completion.SetResult(new ReadOutcome(ReadOutcomeStatus.Unavailable, default, LogIndex.Zero, LogIndex.Zero, NodeId.None, "too many requests in flight"));
        }
        else if (!_inbox.Writer.TryWrite(new NodeInput.Read(query, linearizable, completion, capture)))
        {
            Interlocked.Decrement(ref _pendingRequests);
            completion.SetResult(new ReadOutcome(ReadOutcomeStatus.Unavailable, default, LogIndex.Zero, LogIndex.Zero, NodeId.None, "node inbox full"));
        }
        return completion.Task;
    }

    /// <summary>A message from a peer. Dropped (and counted) when the inbox is full.</summary>
    public void Deliver(Message message)
    {
        if (!_inbox.Writer.TryWrite(new NodeInput.Receive(message)))
        {
            Interlocked.Increment(ref _droppedMessages);
        }
    }

    /// <summary>
    /// A snapshot received from a peer: its bytes are in <paramref name="staged"/>, written and checked but not current.
    /// The core decides: the file is committed only if the core installs the snapshot (the message's term, its leader and
    /// an index past this node's commit), and deleted otherwise. The loop owns <paramref name="staged"/> from here on.
    /// </summary>
    public void DeliverSnapshot(InstallSnapshot message, ISnapshotWriter staged)
    {
        ArgumentNullException.ThrowIfNull(staged);
        if (!_inbox.Writer.TryWrite(new NodeInput.ReceiveSnapshot(message, staged)))
        {
            staged.Dispose();
            Interlocked.Increment(ref _droppedMessages);
        }
    }

    /// <summary>One tick of logical time. Ticks are counted apart from the channel so that none is lost when it is full.</summary>
    public void Tick()
    {
        Interlocked.Increment(ref _pendingTicks);
        _inbox.Writer.TryWrite(NodeInput.Tick.Instance);
    }

    public void ReportSnapshotSent(NodeId peer, bool succeeded) => Post(new NodeInput.SnapshotSent(peer, succeeded));

    public void ReportUnreachable(NodeId peer) => _inbox.Writer.TryWrite(new NodeInput.PeerUnreachable(peer));

    /// <summary>
    /// Asks the leader's core for a membership change. The task completes once the change is applied here and, if it went
    /// through a joint configuration, once the configuration that leaves it is applied too; its result is the encoded
    /// <see cref="ClusterConfig"/> then in force.
    /// </summary>
    public Task<ProposalOutcome> ChangeMembershipAsync(ConfChange change)
    {
        var completion = new TaskCompletionSource<ProposalOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_inbox.Writer.TryWrite(new NodeInput.ChangeMembership(change, completion)))
        {
            completion.SetResult(ProposalOutcome.Refused(ProposalStatus.Rejected, NodeId.None, "node inbox full"));
        }
        return completion.Task;
    }

    /// <summary>Hands leadership to <paramref name="target"/> (none: the most caught-up voter). False if this node cannot.</summary>
    public Task<bool> TransferLeadershipAsync(NodeId target)
    {
        var completion = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_inbox.Writer.TryWrite(new NodeInput.TransferLeadership(target, completion)))
        {
            completion.SetResult(false);
        }
        return completion.Task;
    }

    public Task<NodeStatus> GetStatusAsync()
    {
        var completion = new TaskCompletionSource<NodeStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(new NodeInput.GetStatus(completion));
        return completion.Task;
    }

    private void Post(NodeInput input)
    {
        // Completions and status requests are rare and must not be lost: wait for room if the inbox is full.
        if (!_inbox.Writer.TryWrite(input))
        {
            _ = _inbox.Writer.WriteAsync(input).AsTask();
        }
    }

    private bool Admit()
    {
        if (Interlocked.Increment(ref _pendingRequests) > _options.MaxPendingRequests)
        {
            Interlocked.Decrement(ref _pendingRequests);
            return false;
        }
        return true;
    }

    // ---------------------------------------------------------------- the loop

    /// <summary>Runs the loop until cancelled. A broken invariant ends it with the exception: the node must stop.</summary>
    public async Task RunAsync(CancellationToken cancellationToken)
    {
        try
        {
            while (await _inbox.Reader.WaitToReadAsync(cancellationToken).ConfigureAwait(false))
            {
                ProcessPending();
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Shutting down.
        }
        finally
        {
            FailEverythingPending("node stopped");
        }
    }

    /// <summary>Drains what is waiting (up to MaxBatchInputs) and processes it as one step. Returns false if nothing waited.</summary>
    public bool ProcessPending()
    {
        _batch.Clear();
        while (_batch.Count < _options.MaxBatchInputs && _inbox.Reader.TryRead(out var input))
        {
            _batch.Add(input);
        }
        var ticks = Interlocked.Exchange(ref _pendingTicks, 0);
        if (_batch.Count == 0 && ticks == 0)
        {
            return false;
        }
        Process(_batch, ticks);
        return true;
    }

    private void Process(List<NodeInput> batch, int ticks)
    {
        try
        {
            ProcessBatch(batch, ticks);
        }
        finally
        {
            DiscardStagedSnapshots();
        }
    }

    private void ProcessBatch(List<NodeInput> batch, int ticks)
    {
        _turn++;
        _awkwardMoment = false;
        for (var i = 0; i < batch.Count; i++)
        {
            Dispatch(batch[i]);
            // Buggify: split the batch here; what was stepped so far leaves in Readys of its own.
            if (i < batch.Count - 1 && _storageFailure is null && _buggify?.Fires(BuggifyPoint.SplitBatch) == true)
            {
                TakeReadys();
            }
        }
        if (_storageFailure is not null)
        {
            return;
        }
        for (var i = 0; i < ticks; i++)
        {
            _node.Tick();
        }
        // Buggify: hold this turn's work back in the core, to leave as one Ready with the next turn's. Never twice in a
        // row, and never with a received snapshot staged: its file is committed or deleted within the turn (Process).
        if (!_readyHeldBack && _stagedSnapshots.Count == 0 && _node.HasReady && _buggify?.Fires(BuggifyPoint.MergeWithNextTurn) == true)
        {
            _readyHeldBack = true;
            SendLateMessages();
            return;
        }
        TakeReadys();
        // Compaction writes to the log store, so it waits until the store holds everything the core appended in this
        // batch: were it to fail in the middle of the batch, the node would stop with entries in its core that never
        // reached the store (a proposal dispatched before the written snapshot, say). A Ready held back (above) keeps it
        // waiting for the next turn's.
        if (_snapshotWritten is { } written)
        {
            _snapshotWritten = null;
            HandleSnapshotWritten(written);
        }
        if (_storageFailure is null)
        {
            SendLateMessages();
            MaybeStartSnapshot();
        }
    }

    /// <summary>Takes, handles and advances every Ready the core has. A storage failure stops the node (<see cref="StorageFailed"/>).</summary>
    private void TakeReadys()
    {
        _readyHeldBack = false;
        try
        {
            while (_node.HasReady)
            {
                var ready = _node.GetReady();
                HandleReady(ready);
                _node.Advance(ready);
            }
        }
        catch (StorageException error)
        {
            StorageFailed(error);
        }
    }

    private void Dispatch(NodeInput input)
    {
        switch (input)
        {
            case NodeInput.Receive receive when _storageFailure is null:
                _node.Step(receive.Message);
                break;
            case NodeInput.ReceiveSnapshot received when _storageFailure is null:
                _stagedSnapshots.Add((received.Message.Snapshot, received.Staged));
                _node.Step(received.Message);
                break;
            case NodeInput.ReceiveSnapshot ignored:
                ignored.Staged.Dispose();
                break;
            case NodeInput.Propose propose:
                HandlePropose(propose);
                break;
            case NodeInput.Read read:
                HandleRead(read);
                break;
            case NodeInput.ChangeMembership change:
                HandleChangeMembership(change);
                break;
            case NodeInput.SnapshotWritten written:
                Invariant.Assert(_snapshotWritten is null, "one snapshot of our own is written at a time");
                _snapshotWritten = written; // handled after the batch's Readies (ProcessBatch)
                break;
            case NodeInput.SnapshotSent sent:
                _node.ReportSnapshot(sent.Peer, sent.Succeeded);
                break;
            case NodeInput.PeerUnreachable unreachable:
                _node.ReportUnreachable(unreachable.Peer);
                break;
            case NodeInput.TransferLeadership transfer:
                transfer.Completion.TrySetResult(_storageFailure is null && _node.TransferLeadership(transfer.Target));
                break;
            case NodeInput.GetStatus status:
                status.Completion.TrySetResult(new NodeStatus(_node.Status(), _proposals.Count,
                    _readsAwaitingIndex.Count + _readsAwaitingApply.Count, DroppedMessages, _storageFailure));
                break;
        }
    }

    private void HandlePropose(NodeInput.Propose propose)
    {
        if (_storageFailure is not null)
        {
            Answer(propose.Completion, ProposalOutcome.Refused(ProposalStatus.Rejected, NodeId.None, "storage failed: " + _storageFailure));
            return;
        }
        var result = _node.Propose(propose.Data);
        switch (result.Status)
        {
            case ProposeStatus.Accepted:
                if (_proposals.Remove(result.Index, out var replaced))
                {
                    // Our earlier entry at this index was cut from our log before we led again. It may live on in another
                    // node's log and still be committed by a later leader, so all we can say is: unknown.
                    Resolve(replaced, ProposalStatus.Unknown, default, "this node's entry was replaced; it may still commit elsewhere");
                }
                _proposals[result.Index] = new PendingProposal(result.Index, result.Term, propose.Completion, _time.GetTimestamp());
                break;
            case ProposeStatus.NotLeader:
                Answer(propose.Completion, ProposalOutcome.Refused(ProposalStatus.NotLeader, result.LeaderHint, result.Reason ?? "not the leader"));
                break;
            default:
                Answer(propose.Completion, ProposalOutcome.Refused(ProposalStatus.Rejected, result.LeaderHint, result.Reason ?? "dropped"));
                break;
        }
    }

    private void HandleChangeMembership(NodeInput.ChangeMembership change)
    {
        if (_storageFailure is not null)
        {
            change.Completion.TrySetResult(ProposalOutcome.Refused(ProposalStatus.Rejected, NodeId.None, "storage failed: " + _storageFailure));
            return;
        }
        var result = _node.ProposeConfChange(change.Change);
        var status = result.Status switch
        {
            ProposeStatus.Accepted => ProposalStatus.Applied,
            ProposeStatus.NotLeader => ProposalStatus.NotLeader,
            ProposeStatus.Busy => ProposalStatus.Conflict,
            ProposeStatus.Invalid => ProposalStatus.Invalid,
            _ => ProposalStatus.Rejected,
        };
        if (status != ProposalStatus.Applied)
        {
            change.Completion.TrySetResult(ProposalOutcome.Refused(status, result.LeaderHint, result.Reason ?? status.ToString()));
            return;
        }
        LogMembershipChange(_node.Id, change.Change.ToString(), result.Index.Value, _node.Config.ToString());
        // Not counted against MaxPendingRequests: a change is one at a time by the core's own rule.
        Interlocked.Increment(ref _pendingRequests);
        _proposals[result.Index] = new PendingProposal(result.Index, result.Term, change.Completion, _time.GetTimestamp());
    }

    private void HandleRead(NodeInput.Read read)
    {
        if (!read.Linearizable)
        {
            // A stale read: whatever this node has applied, even with its storage failed.
            AnswerRead(read, ReadOutcomeStatus.Ok, Serve(read, _node.AppliedIndex), LogIndex.Zero, NodeId.None, null);
            return;
        }
        if (_storageFailure is not null)
        {
            AnswerRead(read, ReadOutcomeStatus.Unavailable, default, LogIndex.Zero, NodeId.None, "storage failed: " + _storageFailure);
            return;
        }
        var id = ++_nextReadId;
        if (_node.ReadIndex(id, out var leader))
        {
            _readsAwaitingIndex[id] = read;
        }
        else
        {
            AnswerRead(read, ReadOutcomeStatus.NotLeader, default, LogIndex.Zero, leader, "not the leader");
        }
    }

    /// <summary>
    /// The Ready contract, in one place. The order matters:
    /// 1. send the leader's appends and heartbeats: they promise nothing about our disk, so followers persist in parallel
    ///    with our own fsync (dissertation §10.2.1);
    /// 2. persist: install a received snapshot, append entries (cutting what they replace), store the hard state, fsync
    ///    when the Ready says so;
    /// 3. send what promises what we persisted: votes and acknowledgements;
    /// 4. apply committed entries in index order, completing their proposals;
    /// 5. serve reads whose ReadIndex round completed, once applied reaches their index.
    /// The caller then calls Advance, before it takes the next Ready.
    /// In the simulator, <see cref="IBuggify"/> varies how turns become Readys without reordering these steps: a turn's
    /// inputs split over several Readys, a turn's work held back in the core to leave in one Ready with the next turn's,
    /// and step 3's messages held to the next turn (persisted already, so still true, only late).
    /// </summary>
    private void HandleReady(Ready ready)
    {
        // 0. A configuration is in force once appended: the transport learns new members' addresses before anything is sent.
        ReportConfig();

        // 1. Send what does not depend on our own persistence.
        foreach (var message in ready.Messages)
        {
            _transport.Send(message);
        }

        // 2. Persist.
        var started = _time.GetTimestamp();
        if (ready.Snapshot is { } snapshot)
        {
            InstallSnapshot(snapshot);
        }
        if (ready.Entries.Count > 0)
        {
            _store.Append(ready.Entries);
        }
        if (ready.HardState is { } hardState)
        {
            _store.SetHardState(hardState);
        }
        if (ready.MustSync)
        {
            _store.Sync();
            _observer.Persisted(ready.Entries.Count, _time.GetElapsedTime(started));
        }

        // 3. Votes and acknowledgements promise what is now on disk. Buggify may hold them to the next turn: they stay
        // true, only late (AcknowledgeLate).
        SendLateMessages();
        if (ready.MessagesAfterPersist.Count > 0 && _buggify is not null
            && (_lateMessages.Count > 0 || _buggify.Fires(BuggifyPoint.AcknowledgeLate)))
        {
            // Once this turn holds one Ready's, it holds the rest of the turn's too, so that they leave in order.
            _lateMessages.AddRange(ready.MessagesAfterPersist);
            _lateHeldInTurn = _turn;
        }
        else
        {
            foreach (var message in ready.MessagesAfterPersist)
            {
                _transport.Send(message);
            }
        }

        // 4. Apply.
        if (ready.CommittedEntries.Count > 0)
        {
            var applyStarted = _time.GetTimestamp();
            for (var i = 0; i < ready.CommittedEntries.Count; i++) // not foreach: an IReadOnlyList's enumerator is a heap object
            {
                Apply(ready.CommittedEntries[i]);
            }
            _observer.Applied(ready.CommittedEntries.Count, ready.CommittedEntries[^1].Index, _time.GetElapsedTime(applyStarted));
        }

        // 5. Reads.
        foreach (var state in ready.ReadStates)
        {
            if (!_readsAwaitingIndex.Remove(state.RequestId, out var read))
            {
                continue;
            }
            if (state.Status == ReadStatus.Confirmed)
            {
                _readsAwaitingApply.Enqueue((state.Index, read));
            }
            else
            {
                AnswerRead(read, ReadOutcomeStatus.NotLeader, default, LogIndex.Zero, state.LeaderHint, "leadership lost before the read was confirmed");
            }
        }
        ServeReads(_node.AppliedIndex, ready.CommittedEntries.Count > 0 ? ready.CommittedEntries[^1].Index : LogIndex.Zero);

        if (_buggify is not null && !_awkwardMoment)
        {
            _awkwardMoment = ready.Entries.Any(e => e.Kind == EntryKind.Config)
                || ready.CommittedEntries.Any(e => e.Kind == EntryKind.Config)
                || ready.Messages.Any(m => m is InstallSnapshot)
                || (ready.SoftState.Role == Role.Leader && _softState.Role != Role.Leader);
        }

        if (ready.SoftState != _softState)
        {
            _softState = ready.SoftState;
            Publish(_softState);
            _observer.RoleChanged(ready.SoftState);
            LogRoleChanged(_node.Id, ready.SoftState.Role, ready.SoftState.Term.Value, ready.SoftState.Leader);
        }
    }

    /// <summary>
    /// Sends the votes and acknowledgements an earlier turn held (<see cref="BuggifyPoint.AcknowledgeLate"/>), in order.
    /// They were persisted before they were held, so they are still true; those of a term this node has left are dropped,
    /// as the network may drop them (they help no one, and an acknowledgement of a past term may name entries that a later
    /// leader has cut since).
    /// </summary>
    private void SendLateMessages()
    {
        if (_lateMessages.Count == 0 || _lateHeldInTurn == _turn)
        {
            return;
        }
        foreach (var message in _lateMessages)
        {
            if (message.Term >= _node.Term)
            {
                _transport.Send(message);
            }
        }
        _lateMessages.Clear();
    }

    private void ReportConfig()
    {
        var config = _node.Config;
        if (ReferenceEquals(config, _reportedConfig))
        {
            return;
        }
        var wasMember = _reportedConfig?.Contains(_node.Id) ?? true;
        _reportedConfig = config;
        _observer.ConfigChanged(config);
        LogConfigChanged(_node.Id, config);
        if (wasMember && !config.Contains(_node.Id))
        {
            LogNotAMember(_node.Id, config);
        }
    }

    private void Publish(SoftState state)
    {
        Interlocked.Exchange(ref _publishedLeader, (long)state.Leader.Value);
        Interlocked.Exchange(ref _publishedTerm, (long)state.Term.Value);
        Volatile.Write(ref _publishedRole, (int)state.Role);
    }

    private void Apply(LogEntry entry)
    {
        ReadOnlyMemory<byte> result = default;
        _bytesAppliedSinceSnapshot += entry.SizeBytes;
        if (entry.Kind == EntryKind.Normal && !entry.Data.IsEmpty)
        {
            result = _stateMachine.Apply(entry);
        }
        if (entry.Kind == EntryKind.Config)
        {
            ApplyConfig(entry);
            return;
        }
        if (_proposals.Remove(entry.Index, out var pending))
        {
            // Committed entries are unique per index: if the one applied here is not ours, ours never will be. (Seeing ours
            // cut from this node's log proves nothing: it may survive elsewhere and still commit.)
            if (pending.Term == entry.Term)
            {
                _observer.ProposalCommitted(_time.GetElapsedTime(pending.ProposedAt));
                Resolve(pending, ProposalStatus.Applied, result, null);
            }
            else
            {
                Resolve(pending, ProposalStatus.Lost, default, "another entry was committed at its index");
            }
        }
    }

    /// <summary>
    /// A configuration entry was applied. A change proposed here completes when its configuration applies, unless that
    /// one is joint: then it waits for the configuration that leaves it (which the leader appends by itself).
    /// </summary>
    private void ApplyConfig(LogEntry entry)
    {
        var config = ClusterConfig.Decode(entry.Data.Span);
        if (_proposals.Remove(entry.Index, out var pending))
        {
            if (pending.Term != entry.Term)
            {
                Resolve(pending, ProposalStatus.Lost, default, "another entry was committed at its index");
            }
            else if (config.IsJoint)
            {
                _awaitingLeaveJoint = pending;
            }
            else
            {
                Resolve(pending, ProposalStatus.Applied, entry.Data, null);
            }
        }
        if (!config.IsJoint && _awaitingLeaveJoint is { } joint)
        {
            _awaitingLeaveJoint = null;
            Resolve(joint, ProposalStatus.Applied, entry.Data, null);
        }
    }

    /// <summary>A read's answer: the state machine's, or for a capture, the whole state at <paramref name="applied"/>.</summary>
    private ReadOnlyMemory<byte> Serve(NodeInput.Read read, LogIndex applied)
    {
        if (read.Capture is { } capture)
        {
            capture.TrySetResult(new CapturedState(_node.SnapshotMetadataAt(applied), _stateMachine.CaptureSnapshot()));
            return default;
        }
        return _stateMachine.Query(read.Query);
    }

    private void ServeReads(LogIndex appliedBeforeAdvance, LogIndex appliedInThisReady)
    {
        // Advance has not run yet: what this Ready applied counts as applied.
        var applied = LogIndex.Max(appliedBeforeAdvance, appliedInThisReady);
        while (_readsAwaitingApply.Count > 0 && _readsAwaitingApply.Peek().Index <= applied)
        {
            var (index, read) = _readsAwaitingApply.Dequeue();
            AnswerRead(read, ReadOutcomeStatus.Ok, Serve(read, applied), index, NodeId.None, null);
        }
    }

    private void InstallSnapshot(SnapshotMetadata snapshot)
    {
        // A snapshot received in this batch becomes current only now that the core chose to install it; the log records it
        // after its file is durable.
        var staged = _stagedSnapshots.FindIndex(s => s.Metadata.Index == snapshot.Index && s.Metadata.Term == snapshot.Term);
        if (staged >= 0)
        {
            var writer = _stagedSnapshots[staged].Writer;
            _stagedSnapshots.RemoveAt(staged);
            using (writer)
            {
                writer.Commit();
            }
        }
        _store.InstallSnapshot(snapshot);
        using (var stream = _snapshots.OpenRead(snapshot))
        {
            _stateMachine.Restore(stream);
        }
        _lastSnapshotIndex = snapshot.Index;
        _bytesAppliedSinceSnapshot = 0;
        // Whatever we proposed at or below the snapshot may or may not be in it.
        foreach (var pending in _proposals.Values.Where(p => p.Index <= snapshot.Index).ToList())
        {
            _proposals.Remove(pending.Index);
            Resolve(pending, ProposalStatus.Unknown, default, "a snapshot from the leader replaced this node's log");
        }
        LogSnapshotInstalled(_node.Id, snapshot.Index.Value, snapshot.Term.Value);
    }

    /// <summary>Received snapshots the core did not install (an old term, another leader, not past the commit): deleted, never current.</summary>
    private void DiscardStagedSnapshots()
    {
        foreach (var (metadata, writer) in _stagedSnapshots)
        {
            writer.Dispose();
            LogSnapshotDiscarded(_node.Id, metadata.Index.Value, metadata.Term.Value);
        }
        _stagedSnapshots.Clear();
    }

    // ---------------------------------------------------------------- snapshots of our own

    private void MaybeStartSnapshot()
    {
        var applied = _node.AppliedIndex;
        // Enough entries, once the bytes they brought are worth another copy of the state; or, whatever the state's
        // size, the bytes threshold: the bound on the log kept between snapshots.
        var due = (applied.Value - _lastSnapshotIndex.Value >= (ulong)_options.SnapshotThresholdEntries
                && _bytesAppliedSinceSnapshot >= _lastSnapshotBytes * _options.SnapshotMinAppliedShare)
            || _bytesAppliedSinceSnapshot >= _options.SnapshotThresholdBytes;
        var early = !due && !_snapshotInProgress && applied > _lastSnapshotIndex && _buggify is { } buggify
            && ((_awkwardMoment && buggify.Fires(BuggifyPoint.SnapshotAtAwkwardMoment)) || buggify.Fires(BuggifyPoint.SnapshotNow));
        if (_snapshotInProgress || !(due || early) || applied <= _lastSnapshotIndex)
        {
            return;
        }
        _snapshotInProgress = true;
        _snapshotCompactsAll = early;
        _snapshotStarted = _time.GetTimestamp();
        _bytesAppliedSinceSnapshot = 0;
        var metadata = _node.SnapshotMetadataAtApplied();
        var capture = _stateMachine.CaptureSnapshot();
        // Writing happens off the loop, so that applies go on while it runs; the result comes back as an input.
        _background.Run(() =>
        {
            Exception? error = null;
            long bytes = 0;
            try
            {
                using var writer = _snapshots.Create(metadata);
                capture.WriteTo(writer.Stream);
                bytes = writer.Stream.Position;
                writer.Commit();
            }
            catch (Exception e) when (e is IOException or StorageException or UnauthorizedAccessException)
            {
                error = e;
            }
            Post(new NodeInput.SnapshotWritten(metadata, error, bytes));
        });
    }

    private void HandleSnapshotWritten(NodeInput.SnapshotWritten written)
    {
        _snapshotInProgress = false;
        if (written.Error is not null)
        {
            LogSnapshotFailed(_node.Id, written.Metadata.Index.Value, written.Error);
            return;
        }
        var metadata = written.Metadata;
        if (metadata.Index <= _lastSnapshotIndex)
        {
            return; // a snapshot from the leader overtook it
        }
        _lastSnapshotIndex = metadata.Index;
        _lastSnapshotBytes = written.Bytes;
        // Keep some entries behind the snapshot so that a follower slightly behind gets entries, not a whole snapshot.
        var keep = _snapshotCompactsAll ? 0UL : (ulong)_options.SnapshotKeepEntries;
        var compactTo = new LogIndex(metadata.Index.Value > keep ? metadata.Index.Value - keep : 0);
        if (compactTo > LogIndex.Zero && _node.TermAt(compactTo) is { } term && _storageFailure is null)
        {
            try
            {
                _store.Compact(compactTo, term);
            }
            catch (StorageException error)
            {
                StorageFailed(error);
                return;
            }
        }
        _node.SnapshotTaken(metadata, compactTo);
        _observer.SnapshotTaken(metadata, _time.GetElapsedTime(_snapshotStarted));
        LogSnapshotTaken(_node.Id, metadata.Index.Value, compactTo.Value);
    }

    // ---------------------------------------------------------------- failure

    /// <summary>
    /// A write or fsync failed. It is never retried as if nothing happened (a failed fsync may have dropped dirty pages): the
    /// node stops taking part (no messages in or out, so if it led, the others elect a new leader), refuses writes and
    /// linearizable reads, and keeps answering stale reads from what it applied.
    /// </summary>
    private void StorageFailed(StorageException error)
    {
        _storageFailure = error.Message;
        // Nothing leaves after a failure, not even what was persisted before it and held back.
        _lateMessages.Clear();
        // Step down: nothing more is persisted, so nothing more may be promised. No message leaves after this either, so
        // the other nodes stop hearing from us and elect a leader among themselves.
        _node.StepDown();
        Publish(_node.SoftState);
        LogStorageFailed(_node.Id, error);
        _observer.StorageFailed(error.Message);
        FailEverythingPending("storage failed: " + error.Message);
    }

    private void FailEverythingPending(string reason)
    {
        foreach (var pending in _proposals.Values)
        {
            Resolve(pending, ProposalStatus.Unknown, default, reason);
        }
        _proposals.Clear();
        if (_awaitingLeaveJoint is { } joint)
        {
            _awaitingLeaveJoint = null;
            Resolve(joint, ProposalStatus.Unknown, default, reason);
        }
        foreach (var read in _readsAwaitingIndex.Values)
        {
            AnswerRead(read, ReadOutcomeStatus.Unavailable, default, LogIndex.Zero, NodeId.None, reason);
        }
        _readsAwaitingIndex.Clear();
        while (_readsAwaitingApply.TryDequeue(out var waiting))
        {
            AnswerRead(waiting.Read, ReadOutcomeStatus.Unavailable, default, LogIndex.Zero, NodeId.None, reason);
        }
    }

    /// <summary>The storage failure that stopped this node, or null.</summary>
    public string? StorageFailure => _storageFailure;

    // ---------------------------------------------------------------- answers

    private void Resolve(PendingProposal pending, ProposalStatus status, ReadOnlyMemory<byte> result, string? reason) =>
        Answer(pending.Completion, new ProposalOutcome(status, pending.Index, pending.Term, result, _node.Leader, reason));

    private void Answer(TaskCompletionSource<ProposalOutcome> completion, ProposalOutcome outcome)
    {
        if (completion.TrySetResult(outcome))
        {
            Interlocked.Decrement(ref _pendingRequests);
        }
    }

    private void AnswerRead(NodeInput.Read read, ReadOutcomeStatus status, ReadOnlyMemory<byte> result, LogIndex readIndex, NodeId leader, string? reason)
    {
        if (read.Completion.TrySetResult(new ReadOutcome(status, result, readIndex, _node.AppliedIndex, leader, reason)))
        {
            Interlocked.Decrement(ref _pendingRequests);
        }
    }

    private sealed record PendingProposal(LogIndex Index, Term Term, TaskCompletionSource<ProposalOutcome> Completion, long ProposedAt);

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "{Node} is now {Role} in term {Term} (leader {Leader})")]
    private partial void LogRoleChanged(NodeId node, Role role, ulong term, NodeId leader);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "{Node} installed the leader's snapshot at {Index}/{Term}")]
    private partial void LogSnapshotInstalled(NodeId node, ulong index, ulong term);

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "{Node} did not install a received snapshot at {Index}/{Term} (an old term, another leader, or not past its commit); its file is deleted")]
    private partial void LogSnapshotDiscarded(NodeId node, ulong index, ulong term);

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "{Node} took a snapshot at {Index}; log compacted through {CompactedTo}")]
    private partial void LogSnapshotTaken(NodeId node, ulong index, ulong compactedTo);

    [LoggerMessage(EventId = 4, Level = LogLevel.Error, Message = "{Node} could not write its snapshot at {Index}; it will try again")]
    private partial void LogSnapshotFailed(NodeId node, ulong index, Exception error);

    [LoggerMessage(EventId = 5, Level = LogLevel.Critical, Message = "{Node} storage failed: it stops taking writes and leaves the cluster until restarted")]
    private partial void LogStorageFailed(NodeId node, Exception error);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "{Node} appended a membership change ({Change}) at {Index}: {Config}")]
    private partial void LogMembershipChange(NodeId node, string change, ulong index, string config);

    [LoggerMessage(EventId = 7, Level = LogLevel.Warning, Message = "{Node}: the configuration in force is now {Config}")]
    private partial void LogConfigChanged(NodeId node, ClusterConfig config);

    [LoggerMessage(EventId = 8, Level = LogLevel.Warning, Message = "{Node} is not a member of the configuration in force ({Config}): it was removed, or waits to be added; it will not campaign")]
    private partial void LogNotAMember(NodeId node, ClusterConfig config);
}
