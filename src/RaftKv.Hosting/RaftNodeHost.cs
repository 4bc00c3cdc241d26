using Microsoft.Extensions.Options;
using RaftKv.Node;
using RaftKv.RaftCore;
using RaftKv.StateMachine;
using RaftKv.Storage;
using RaftKv.Transport;

namespace RaftKv.Server;

/// <summary>
/// One Raft node in this process: opens its data directory, builds the core, the loop, the KV state machine and the peer
/// transport, and runs them until the host stops. On shutdown it first hands leadership to the most caught-up peer
/// (while Kestrel still serves peers), then stops the loop and closes the log cleanly.
/// </summary>
public sealed partial class NodeHost : IHostedService, IPeerHost, IAsyncDisposable
{
    private readonly ServerOptions _options;
    private readonly ILogger<NodeHost> _logger;
    private readonly ILoggerFactory _loggers;
    private readonly RaftMetrics _metrics;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly CancellationTokenSource _stopping = new();
    private readonly CancellationTokenSource _peerStreamsClosing = new();
    private readonly Lazy<KvExecutor> _executor;
    private WalLogStore? _log;
    private FileSnapshotStore? _snapshots;
    private GrpcTransport? _transport;
    private Task? _loopTask;
    private Task? _tickerTask;

    public NodeHost(IOptions<ServerOptions> options, ILoggerFactory loggers, RaftMetrics metrics, IHostApplicationLifetime lifetime, IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(loggers);
        _options = options.Value;
        _loggers = loggers;
        _logger = loggers.CreateLogger<NodeHost>();
        _metrics = metrics;
        _lifetime = lifetime;
        _executor = new Lazy<KvExecutor>(services.GetRequiredService<KvExecutor>);
    }

    public NodeId Self => _options.Id;

    public double TickSeconds => _options.TickMs / 1000.0;

    public RaftLoop Loop { get; private set; } = null!;

    public KvStateMachine StateMachine { get; private set; } = null!;

    /// <summary>The peer transport's settings; the gRPC service takes its message bound from here too.</summary>
    public static TransportOptions TransportSettings { get; } = new();

    public GrpcTransport Transport => _transport!;

    public ISnapshotStore Snapshots => _snapshots!;

    public CancellationToken PeerStreamsClosing => _peerStreamsClosing.Token;

    public WalLogStore Log => _log!;

    public FileSnapshotStore SnapshotFiles => _snapshots!;

    public IReadOnlyDictionary<NodeId, Uri> Peers { get; private set; } = new Dictionary<NodeId, Uri>();

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var directory = Path.GetFullPath(_options.DataDir);
        Directory.CreateDirectory(directory);
        var files = new PhysicalFileSystem(directory);
        var storage = new StorageOptions { SegmentBytes = _options.SegmentBytes, SnapshotsToKeep = _options.SnapshotsToKeep };
        _log = new WalLogStore(files, storage, _loggers.CreateLogger<WalLogStore>());
        _snapshots = new FileSnapshotStore(files, storage);
        Peers = _options.PeerUrls();
        var config = ClusterConfig.Create(Peers.Keys);
        var state = StartupState.Load(_log, _snapshots, config);
        var raft = new RaftNode(new RaftOptions
        {
            Id = Self,
            RandomSeed = _options.RandomSeed != 0 ? _options.RandomSeed : Random.Shared.Next(1, int.MaxValue),
            ElectionTimeoutTicks = _options.ElectionTimeoutTicks,
            HeartbeatIntervalTicks = _options.HeartbeatIntervalTicks,
        }, state);
        StateMachine = new KvStateMachine(new KvOptions { MaxSessions = _options.MaxSessions });
        _transport = new GrpcTransport(this, Peers, TransportSettings, _loggers.CreateLogger<GrpcTransport>());
        Loop = new RaftLoop(raft, _log, _snapshots, _transport, StateMachine,
            new NodeLoopOptions
            {
                MaxPendingRequests = _options.MaxPendingRequests,
                SnapshotThresholdEntries = _options.SnapshotThresholdEntries,
                SnapshotKeepEntries = _options.SnapshotKeepEntries,
            },
            observer: _metrics, logger: _loggers.CreateLogger<RaftLoop>(), time: TimeProvider.System);
        _metrics.Attach(this);
        LogStarting(Self, directory, state.LastIndex.Value, state.HardState.Term.Value, config);

        _loopTask = Loop.RunAsync(_stopping.Token);
        _ = _loopTask.ContinueWith(t =>
        {
            if (t.IsFaulted)
            {
                // A broken invariant: the node must stop, never limp on with a corrupt state.
                var error = t.Exception!.GetBaseException();
                LogLoopFailed(error);
                Environment.ExitCode = 70;
                _lifetime.StopApplication();
            }
        }, TaskScheduler.Default);
        _tickerTask = Ticker.RunAsync(Loop, TimeSpan.FromMilliseconds(_options.TickMs), TimeProvider.System, _stopping.Token);
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
            var deadline = DateTime.UtcNow + TimeSpan.FromMilliseconds(_options.TickMs * _options.ElectionTimeoutTicks * 2);
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
                catch (Exception e) when (e is TimeoutException or OperationCanceledException or InvariantViolationException)
                {
                    // Stopping anyway.
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

    // ---------------------------------------------------------------- IPeerHost

    public void Deliver(Message message) => Loop.Deliver(message);

    public void ReportUnreachable(NodeId peer) => Loop.ReportUnreachable(peer);

    public void ReportSnapshotSent(NodeId peer, bool succeeded) => Loop.ReportSnapshotSent(peer, succeeded);

    public Task<ForwardAnswer> ExecuteForwardedAsync(ForwardedRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        return _executor.Value.ExecuteForwardedAsync(request, cancellationToken);
    }

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "{Node} starting from {Directory}: last index {LastIndex}, term {Term}, {Config}")]
    private partial void LogStarting(NodeId node, string directory, ulong lastIndex, ulong term, ClusterConfig config);

    [LoggerMessage(EventId = 302, Level = LogLevel.Critical, Message = "the node loop stopped on a broken invariant; the process exits")]
    private partial void LogLoopFailed(Exception error);

    [LoggerMessage(EventId = 303, Level = LogLevel.Information, Message = "{Node} handed leadership to {Target} (taken over: {TakenOver})")]
    private partial void LogHandedOff(NodeId node, NodeId target, bool takenOver);

    [LoggerMessage(EventId = 304, Level = LogLevel.Information, Message = "{Node} stopped; log closed")]
    private partial void LogStopped(NodeId node);
}
