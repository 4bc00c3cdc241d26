using Grpc.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RaftKv.Node;
using RaftKv.RaftCore;
using RaftKv.Storage;
using RaftKv.Transport;

namespace RaftKv.Hosting;

/// <summary>
/// One Raft node in this process: opens its data directory, builds the core, the loop and the peer transport around the
/// application's state machine, and runs them until the host stops. Requests reach it as bytes (<see cref="IRaftNode"/>);
/// a follower forwards them to the leader unread. On shutdown it first hands leadership to the most caught-up peer
/// (while Kestrel still serves peers), then stops the loop and closes the log cleanly.
/// </summary>
internal sealed partial class RaftNodeHost : IHostedService, IPeerHost, IRaftNode, IRaftLoopObserver, IAsyncDisposable
{
    private readonly NodeOptions _node;
    private readonly RaftOptions _raft;
    private readonly NodeLoopOptions _loop;
    private readonly StorageOptions _storage;
    private readonly TransportOptions _transportOptions;
    private readonly ILogger<RaftNodeHost> _logger;
    private readonly ILoggerFactory _loggers;
    private readonly RaftMetrics _metrics;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _peerStreamsClosing = new();
    private WalLogStore? _log;
    private FileSnapshotStore? _snapshots;
    private GrpcTransport? _transport;
    private Task? _loopTask;
    private Task? _tickerTask;
    private NodeId _lastLeader;
    private readonly int _maxCommandBytes;

    public RaftNodeHost(
        IOptions<NodeOptions> node,
        IOptions<RaftOptions> raft,
        IOptions<NodeLoopOptions> loop,
        IOptions<StorageOptions> storage,
        IOptions<TransportOptions> transport,
        IStateMachine stateMachine,
        ILoggerFactory loggers,
        RaftMetrics metrics,
        IHostApplicationLifetime lifetime)
    {
        ArgumentNullException.ThrowIfNull(loggers);
        _node = node.Value;
        _raft = raft.Value;
        _loop = loop.Value;
        _storage = storage.Value;
        _transportOptions = transport.Value;
        _maxCommandBytes = MaxCommandBytes(_storage);
        StateMachine = stateMachine;
        _loggers = loggers;
        _logger = loggers.CreateLogger<RaftNodeHost>();
        _metrics = metrics;
        _lifetime = lifetime;
    }

    /// <summary>What a log record adds to a command (index, term, kind, lengths): a generous bound, so the command always fits.</summary>
    private const int LogEntryFramingBytes = 64;

    /// <summary>The largest command or query this node takes: what a log entry holds, less its framing.</summary>
    public static int MaxCommandBytes(StorageOptions storage) => storage.MaxEntryBytes - LogEntryFramingBytes;

    /// <summary>Bytes a peer message adds around one entry (message header, entry header): the transport's bound must hold both.</summary>
    public const int MessageFramingBytes = 1024;

    public NodeId Self => _node.Id;

    public NodeId Id => Self;

    public double TickSeconds => _node.TickMs / 1000.0;

    public RaftLoop Loop { get; private set; } = null!;

    public IStateMachine StateMachine { get; }

    public GrpcTransport Transport => _transport!;

    public ISnapshotStore Snapshots => _snapshots!;

    public CancellationToken PeerStreamsClosing => _peerStreamsClosing.Token;

    public WalLogStore Log => _log!;

    public FileSnapshotStore SnapshotFiles => _snapshots!;

    public IReadOnlyDictionary<NodeId, Uri> Peers { get; private set; } = new Dictionary<NodeId, Uri>();

    public NodeId KnownLeader => Loop.KnownLeader;

    public Term KnownTerm => Loop.KnownTerm;

    public event EventHandler<LeaderChangedEventArgs>? LeaderChanged;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var directory = Path.GetFullPath(_node.DataDir);
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            throw new StorageException($"cannot create the data directory {directory}: {error.Message}", error);
        }
        var files = new PhysicalFileSystem(directory);
        _log = new WalLogStore(files, _storage, _loggers.CreateLogger<WalLogStore>());
        _snapshots = new FileSnapshotStore(files, _storage);
        Peers = _node.PeerUrls();
        var config = ClusterConfig.Create(Peers.Keys);
        var state = StartupState.Load(_log, _snapshots, config);
        var raft = new RaftNode(_raft with
        {
            Id = Self,
            RandomSeed = _raft.RandomSeed != 0 ? _raft.RandomSeed : Random.Shared.Next(1, int.MaxValue),
        }, state);
        _transport = new GrpcTransport(this, Peers, _transportOptions, _loggers.CreateLogger<GrpcTransport>());
        Loop = new RaftLoop(raft, _log, _snapshots, _transport, StateMachine, _loop,
            observer: this, logger: _loggers.CreateLogger<RaftLoop>(), time: TimeProvider.System);
        _metrics.Attach(this);
        LogStarting(Self, directory, state.LastIndex.Value, state.HardState.Term.Value, config);

        _loopTask = Loop.RunAsync(_stopping.Token);
        _ = _loopTask.ContinueWith(t =>
        {
            if (t.IsFaulted)
            {
                // A broken invariant, or an application's state machine that threw: the node must stop, never limp on
                // with a corrupt state.
                var error = t.Exception!.GetBaseException();
                LogLoopFailed(error);
                Environment.ExitCode = 70;
                _lifetime.StopApplication();
            }
        }, TaskScheduler.Default);
        _tickerTask = Ticker.RunAsync(Loop, TimeSpan.FromMilliseconds(_node.TickMs), TimeProvider.System, _stopping.Token);
        _transport.Start();
        _lifetime.ApplicationStopping.Register(HandOffLeadership);
        return Task.CompletedTask;
    }

    /// <summary>
    /// On SIGTERM, before Kestrel stops: if this node leads, hand leadership to the most caught-up voter and wait briefly
    /// for it to take over, so clients see a new leader at once instead of after an election timeout.
    /// </summary>
    private void HandOffLeadership()
    {
        try
        {
            var status = Loop.GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(1)).GetAwaiter().GetResult();
            if (status.Raft.Role != Role.Leader || status.Raft.Peers.Count == 0)
            {
                return;
            }
            var connected = Transport.Connected;
            var target = status.Raft.Peers
                .Where(p => status.Raft.Config.Voters.Contains(p.Id) && p.RecentActive && connected.GetValueOrDefault(p.Id))
                .OrderByDescending(p => p.Match).ThenBy(p => p.Id).FirstOrDefault();
            if (target is null || !Loop.TransferLeadershipAsync(target.Id).WaitAsync(TimeSpan.FromSeconds(1)).GetAwaiter().GetResult())
            {
                return;
            }
            var deadline = DateTime.UtcNow + TimeSpan.FromMilliseconds(_node.TickMs * _raft.ElectionTimeoutTicks * 2);
            while (DateTime.UtcNow < deadline && Loop.KnownRole == Role.Leader)
            {
                Thread.Sleep(20);
            }
            var takenOver = Loop.KnownRole != Role.Leader;
            LogHandedOff(Self, target.Id, takenOver);
        }
        catch (TimeoutException)
        {
            // The loop is stuck or gone: nothing to hand off.
        }
        finally
        {
            _peerStreamsClosing.Cancel();
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        foreach (var task in new[] { _loopTask, _tickerTask })
        {
            if (task is not null)
            {
                try
                {
                    await task.WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
                }
                catch (Exception e) when (e is TimeoutException or OperationCanceledException || task.IsFaulted)
                {
                    // Stopping anyway; a loop that failed was logged (and set the exit code) when it failed.
                }
            }
        }
        if (_transport is not null)
        {
            await _transport.DisposeAsync().ConfigureAwait(false);
        }
        _log?.Dispose();
        LogStopped(Self);
    }

    public async ValueTask DisposeAsync()
    {
        if (_transport is not null)
        {
            await _transport.DisposeAsync().ConfigureAwait(false); // idempotent: StopAsync may have done it
        }
        _stopping.Dispose();
        _peerStreamsClosing.Dispose();
    }

    // ---------------------------------------------------------------- IRaftNode: requests, from any thread

    public Task<NodeStatus> GetStatusAsync(CancellationToken cancellationToken = default) => Loop.GetStatusAsync().WaitAsync(cancellationToken);

    public async Task<NodeAnswer> ProposeAsync(ReadOnlyMemory<byte> command, CancellationToken cancellationToken = default)
    {
        if (TooLarge(command) is { } refused)
        {
            return refused; // refused here, before it travels or reaches any log
        }
        var leader = Loop.KnownLeader;
        if (leader == Self)
        {
            var (answer, hint) = await ProposeHereAsync(command, cancellationToken).ConfigureAwait(false);
            if (answer is not null)
            {
                return answer;
            }
            leader = hint; // leadership moved while we tried: the core's hint is fresher than the published leader
        }
        return await ForwardAsync(ForwardKind.Write, command, leader, cancellationToken).ConfigureAwait(false);
    }

    public async Task<NodeAnswer> ReadAsync(ReadOnlyMemory<byte> query, ReadConsistency consistency, CancellationToken cancellationToken = default)
    {
        if (TooLarge(query) is { } refused)
        {
            return refused;
        }
        if (consistency == ReadConsistency.Stale)
        {
            return (await ReadHereAsync(query, linearizable: false, cancellationToken).ConfigureAwait(false)).Answer!;
        }
        var leader = Loop.KnownLeader;
        if (leader == Self)
        {
            var (answer, hint) = await ReadHereAsync(query, linearizable: true, cancellationToken).ConfigureAwait(false);
            if (answer is not null)
            {
                return answer;
            }
            leader = hint;
        }
        return await ForwardAsync(ForwardKind.LinearizableRead, query, leader, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A request a follower forwarded: run here, or say that this node does not lead; never forwarded again.</summary>
    public async Task<NodeAnswer> ExecuteForwardedAsync(ForwardedRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (TooLarge(request.Command) is { } refused)
        {
            return refused;
        }
        var (answer, hint) = request.Kind == ForwardKind.Write
            ? await ProposeHereAsync(request.Command, cancellationToken).ConfigureAwait(false)
            : await ReadHereAsync(request.Command, linearizable: true, cancellationToken).ConfigureAwait(false);
        return answer ?? NodeAnswer.Failed(AnswerStatus.NoLeader, hint, "the leader changed while the request was forwarded");
    }

    /// <summary>A command or query larger than the log (or a peer message) takes: refused, never appended.</summary>
    private NodeAnswer? TooLarge(ReadOnlyMemory<byte> command) =>
        command.Length <= _maxCommandBytes
            ? null
            : NodeAnswer.Failed(AnswerStatus.TooLarge, NodeId.None,
                $"{command.Length} bytes; commands are at most {_maxCommandBytes} bytes (RaftKv:Storage:MaxEntryBytes {_storage.MaxEntryBytes}, less framing)");

    /// <summary>Proposes on this node. No answer (and the core's leader hint) when this node does not lead: the caller forwards.</summary>
    private async Task<(NodeAnswer? Answer, NodeId LeaderHint)> ProposeHereAsync(ReadOnlyMemory<byte> command, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_node.RequestTimeout);
        ProposalOutcome outcome;
        try
        {
            outcome = await Loop.ProposeAsync(command).WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (NodeAnswer.Failed(AnswerStatus.Unknown, Loop.KnownLeader, $"no outcome within {_node.RequestTimeoutMs} ms"), default);
        }
        _metrics.ProposalOutcome(outcome.Status);
        var leader = Loop.KnownLeader;
        return outcome.Status switch
        {
            ProposalStatus.Applied => (new NodeAnswer(AnswerStatus.Ok, outcome.Result, outcome.Index, outcome.Term, leader, null), default),
            ProposalStatus.NotLeader => (null, outcome.LeaderHint),
            ProposalStatus.Lost => (NodeAnswer.Failed(AnswerStatus.Lost, leader, outcome.Reason ?? "another leader's entry took its place"), default),
            ProposalStatus.Rejected => (NodeAnswer.Failed(AnswerStatus.Unavailable, leader, outcome.Reason ?? "refused"), default),
            _ => (NodeAnswer.Failed(AnswerStatus.Unknown, leader, outcome.Reason ?? "the node lost track of the write"), default),
        };
    }

    /// <summary>Reads on this node. No answer (and the core's leader hint) when a linearizable read finds that this node does not lead.</summary>
    private async Task<(NodeAnswer? Answer, NodeId LeaderHint)> ReadHereAsync(ReadOnlyMemory<byte> query, bool linearizable, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_node.RequestTimeout);
        ReadOutcome read;
        try
        {
            read = await Loop.ReadAsync(query, linearizable).WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (NodeAnswer.Failed(AnswerStatus.TimedOut, Loop.KnownLeader, $"no answer within {_node.RequestTimeoutMs} ms"), default);
        }
        return read.Status switch
        {
            ReadOutcomeStatus.Ok => (new NodeAnswer(AnswerStatus.Ok, read.Result, read.AppliedIndex, Loop.KnownTerm, Loop.KnownLeader, null), default),
            ReadOutcomeStatus.NotLeader => (null, read.LeaderHint),
            _ => (NodeAnswer.Failed(AnswerStatus.Unavailable, Loop.KnownLeader, read.Reason ?? "unavailable"), default),
        };
    }

    private async Task<NodeAnswer> ForwardAsync(ForwardKind kind, ReadOnlyMemory<byte> command, NodeId leader, CancellationToken cancellationToken)
    {
        if (leader.IsNone || leader == Self || !Peers.ContainsKey(leader))
        {
            return NodeAnswer.Failed(AnswerStatus.NoLeader, Loop.KnownLeader, "no leader is known right now (an election may be under way)");
        }
        try
        {
            // The leader answers within its own request timeout; the extra second covers the trip.
            var answer = await Transport.ForwardAsync(leader, new ForwardedRequest(Self, kind, command),
                _node.RequestTimeout + TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            _metrics.Forwarded();
            // An answer names the leader that gave it; a refusal names whom the leader knows of (perhaps nobody).
            return answer.Status == AnswerStatus.Ok && answer.Leader.IsNone ? answer with { Leader = leader } : answer;
        }
        catch (RpcException error)
        {
            // The leader did not answer, or answered with a failure of the call itself: a write may or may not have been applied.
            LogForwardFailed(leader, error.Status.Detail);
            return kind == ForwardKind.Write
                ? NodeAnswer.Failed(AnswerStatus.Unknown, leader, $"the leader {leader} did not answer the forwarded write ({error.StatusCode})")
                : NodeAnswer.Failed(AnswerStatus.Unavailable, leader, $"the leader {leader} did not answer ({error.StatusCode}); nothing was read");
        }
    }

    // ---------------------------------------------------------------- IPeerHost

    public void Deliver(Message message) => Loop.Deliver(message);

    public void ReportUnreachable(NodeId peer) => Loop.ReportUnreachable(peer);

    public void ReportSnapshotSent(NodeId peer, bool succeeded) => Loop.ReportSnapshotSent(peer, succeeded);

    // ---------------------------------------------------------------- IRaftLoopObserver: on the loop, must not block

    void IRaftLoopObserver.Persisted(int entryCount, TimeSpan syncDuration) => _metrics.Persisted(entryCount, syncDuration);

    void IRaftLoopObserver.Applied(int entryCount, LogIndex appliedIndex, TimeSpan duration) => _metrics.Applied(entryCount, appliedIndex, duration);

    void IRaftLoopObserver.ProposalCommitted(TimeSpan sinceProposed) => _metrics.ProposalCommitted(sinceProposed);

    void IRaftLoopObserver.RoleChanged(SoftState state)
    {
        if (state.Leader != _lastLeader)
        {
            _lastLeader = state.Leader;
            _metrics.LeaderChanged();
            try
            {
                LeaderChanged?.Invoke(this, new LeaderChangedEventArgs(state.Leader, state.Term, state.Role));
            }
            catch (Exception error) when (error is not InvariantViolationException)
            {
                // An application's handler must not stop the node loop: it is logged, and the node goes on.
                LogHandlerFailed(error);
            }
        }
    }

    void IRaftLoopObserver.SnapshotTaken(SnapshotMetadata metadata, TimeSpan duration) => _metrics.SnapshotTaken(metadata, duration);

    void IRaftLoopObserver.StorageFailed(string reason) => _metrics.StorageFailed(reason);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "{Node} starting from {Directory}: last index {LastIndex}, term {Term}, {Config}")]
    private partial void LogStarting(NodeId node, string directory, ulong lastIndex, ulong term, ClusterConfig config);

    [LoggerMessage(EventId = 302, Level = LogLevel.Critical, Message = "the node loop stopped on a broken invariant; the process exits")]
    private partial void LogLoopFailed(Exception error);

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "{Node} handed leadership to {Target} (taken over: {TakenOver})")]
    private partial void LogHandedOff(NodeId node, NodeId target, bool takenOver);

    [LoggerMessage(EventId = 304, Level = LogLevel.Information, Message = "{Node} stopped; log closed")]
    private partial void LogStopped(NodeId node);

    [LoggerMessage(EventId = 305, Level = LogLevel.Error, Message = "a LeaderChanged handler failed; the node goes on")]
    private partial void LogHandlerFailed(Exception error);

    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "forwarding to the leader {Leader} failed: {Detail}")]
    private partial void LogForwardFailed(NodeId leader, string detail);
}
