using System.Text;
using Grpc.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RaftKv.Contracts;
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
    private readonly TlsOptions _tls;
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
    private readonly ILeaderRequestHandler? _leaderRequests;

    public RaftNodeHost(
        IOptions<NodeOptions> node,
        IOptions<RaftOptions> raft,
        IOptions<NodeLoopOptions> loop,
        IOptions<StorageOptions> storage,
        IOptions<TransportOptions> transport,
        IOptions<TlsOptions> tls,
        IStateMachine stateMachine,
        ILoggerFactory loggers,
        RaftMetrics metrics,
        IHostApplicationLifetime lifetime,
        IEnumerable<ILeaderRequestHandler> leaderRequests)
    {
        ArgumentNullException.ThrowIfNull(leaderRequests);
        _leaderRequests = leaderRequests.SingleOrDefault();
        ArgumentNullException.ThrowIfNull(loggers);
        _node = node.Value;
        _raft = raft.Value;
        _loop = loop.Value;
        _storage = storage.Value;
        _transportOptions = transport.Value;
        _tls = tls.Value;
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

    /// <summary>
    /// Every member's peer URL, as the configuration in force names them (or, before it names any, as the node was started
    /// with), and those of nodes a member vouched for while this node lags behind the change that added them.
    /// </summary>
    public IReadOnlyDictionary<NodeId, Uri> Peers => _peers;

    private volatile IReadOnlyDictionary<NodeId, Uri> _peers = new Dictionary<NodeId, Uri>();

    /// <summary>The configuration in force on this node, as the loop last reported it.</summary>
    public ClusterConfig Config => _config;

    private volatile ClusterConfig _config = ClusterConfig.Empty;

    private NodeIdentity? _identity;
    private PeerRegistry? _registry;
    private readonly PeerAdmission _admission = new(TimeProvider.System);
    private int _refused;

    public NodeIdentity Identity => _identity!;

    /// <summary>This node's data directory, as a full path.</summary>
    public string DataDirectory => Path.GetFullPath(_node.DataDir);

    // Before the loop runs (the host still starting): no leader, term zero, for whoever asks that early.
    public NodeId KnownLeader => Loop?.KnownLeader ?? NodeId.None;

    public Term KnownTerm => Loop?.KnownTerm ?? Term.Zero;

    public event EventHandler<LeaderChangedEventArgs>? LeaderChanged;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var directory = Path.GetFullPath(_node.DataDir);
        bool fresh;
        try
        {
            Directory.CreateDirectory(directory);
            fresh = !Directory.EnumerateFileSystemEntries(directory).Any();
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            throw new StorageException($"cannot create the data directory {directory}: {error.Message}", error);
        }
        var files = new PhysicalFileSystem(directory);
        var (identity, bootstrap, seeds) = await IdentifyAsync(files, directory, fresh, cancellationToken).ConfigureAwait(false);
        _identity = identity;
        _registry = new PeerRegistry(files);
        _peers = seeds;
        _transport = new GrpcTransport(this, seeds, _transportOptions, _loggers.CreateLogger<GrpcTransport>(), PeerTlsOrNone());
        if (fresh)
        {
            // Before anything is written: a fresh data directory under an id that a peer heard from with another one is a
            // node that lost its data. It must not take part (it may have voted in a term it forgot).
            await AskPeersAsync(directory, fresh, cancellationToken).ConfigureAwait(false);
            identity.Write(files);
        }
        _log = new WalLogStore(files, _storage, _loggers.CreateLogger<WalLogStore>());
        _snapshots = new FileSnapshotStore(files, _storage);
        var state = StartupState.Load(_log, _snapshots, bootstrap);
        var config = state.Snapshot?.Config ?? LastConfig(state) ?? ClusterConfig.Empty;
        if (_node.ForceNewCluster)
        {
            (state, identity) = ForceNewCluster(files, directory, fresh, state, config, identity);
            _identity = identity;
            config = LastConfig(state)!;
        }
        var raft = new RaftNode(_raft with
        {
            Id = Self,
            RandomSeed = _raft.RandomSeed != 0 ? _raft.RandomSeed : Random.Shared.Next(1, int.MaxValue),
        }, state);
        _config = config;
        if (!config.Members.IsEmpty)
        {
            _peers = PeerUrlsOf(config, seeds);
            _transport.SetPeers(_peers);
        }
        if (!fresh)
        {
            await AskPeersAsync(directory, fresh, cancellationToken).ConfigureAwait(false);
        }
        Loop = new RaftLoop(raft, _log, _snapshots, _transport, StateMachine, _loop, LowPriorityScheduler.Instance,
            observer: this, logger: _loggers.CreateLogger<RaftLoop>(), time: TimeProvider.System);
        _metrics.Attach(this);
        LogStarting(Self, directory, identity.ClusterIdText, state.LastIndex.Value, state.HardState.Term.Value, config);
        var (httpBound, peerBound) = (Bound(_node.HttpListenUrl), Bound(_node.PeerListenUrl));
        LogListening(Self, _node.Http, httpBound, _node.PeerUrl, peerBound);
        if (_node.Http2ListenUrl is { } http2)
        {
            LogListeningHttp2(Self, http2);
        }

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
    }

    /// <summary>
    /// Who this data directory belongs to. A fresh directory is bootstrapped from the configured members (a new cluster,
    /// whose id derives from that configuration), or, with --join, joins the cluster a member names: it takes that
    /// cluster's id and members' addresses and waits, with no configuration, to be added. A used directory must belong to
    /// this node id: started under another id it refuses, whatever the settings say.
    /// </summary>
    private async Task<(NodeIdentity Identity, ClusterConfig? Bootstrap, IReadOnlyDictionary<NodeId, Uri> Seeds)> IdentifyAsync(
        IFileSystem files, string directory, bool fresh, CancellationToken cancellationToken)
    {
        var identity = NodeIdentity.Read(files);
        if (identity is not null && identity.Node != Self)
        {
            throw new StorageException($"{directory} belongs to {identity.Node} of cluster {identity.ClusterIdText}, not to {Self}; " +
                "a data directory is never reused under another id");
        }
        var joining = !string.IsNullOrWhiteSpace(_node.Join);
        if (joining && (fresh || identity is not null))
        {
            var members = await JoinClient.FetchMembersAsync(new Uri(_node.Join), Self, _tls.Enabled ? TlsTrust.LoadCa(_tls.CaFile) : null, cancellationToken)
                .ConfigureAwait(false);
            if (identity is not null && identity.ClusterId != members.ClusterId)
            {
                throw new StorageException($"{directory} holds data of cluster {identity.ClusterIdText}, but {_node.Join} serves cluster {NodeIdentity.FormatId(members.ClusterId)}");
            }
            identity ??= NodeIdentity.Create(Self, members.ClusterId); // written once the peers agree
            LogJoining(Self, _node.Join, identity.ClusterIdText, members.Peers.Count);
            return (identity, null, members.Peers);
        }
        var seeds = _node.PeerUrls();
        var bootstrap = ClusterConfig.Create(seeds.Keys, addresses: seeds.Select(p => KeyValuePair.Create(p.Key, MemberAddress.Format(p.Value, null))));
        if (identity is null)
        {
            // A fresh directory, or one written before identities were recorded: either way the cluster is the one these
            // members bootstrapped.
            identity = NodeIdentity.Create(Self, NodeIdentity.ClusterIdOf(bootstrap, _node.ClusterToken));
            if (!fresh)
            {
                identity.Write(files); // a fresh directory's is written once the peers agree
            }
        }
        return (identity, bootstrap, seeds);
    }

    /// <summary>
    /// --force-new-cluster: this survivor's log gets a configuration of itself alone after every entry it holds, and the
    /// data directory a new cluster id. Loud in the log, since it overrides what the lost majority might have decided.
    /// </summary>
    private (PersistentState State, NodeIdentity Identity) ForceNewCluster(IFileSystem files, string directory, bool fresh, PersistentState state,
        ClusterConfig config, NodeIdentity identity)
    {
        if (fresh || config.Members.IsEmpty)
        {
            throw new StorageException($"ForceNewCluster: {directory} holds no cluster's data; it forces a new cluster from a survivor's own data");
        }
        if (config.Voters.SetEquals([Self]) && config.Learners.IsEmpty && !config.IsJoint)
        {
            LogForcedAlready(Self, config);
            return (state, identity);
        }
        var address = config.Addresses.TryGetValue(Self, out var known) ? known : MemberAddress.Format(_node.PeerUrl, null);
        var single = ClusterConfig.Create([Self], addresses: [KeyValuePair.Create(Self, address)]);
        var before = new SnapshotMetadata(state.LastIndex, state.Entries.Count > 0 ? state.Entries[^1].Term : state.BaseTerm, config);
        var forced = StartupState.ForceSingleMember(_log!, state, single);
        var newIdentity = NodeIdentity.Create(Self, NodeIdentity.DerivedClusterId("force-new-cluster", before, single));
        newIdentity.Write(files);
        LogForced(Self, identity.ClusterIdText, config, newIdentity.ClusterIdText, state.LastIndex.Value);
        return (forced, newIdentity);
    }

    /// <summary>
    /// Asks the members whether they hear this node (<c>Hello</c>) and refuses to start when one refuses it for good (it lost
    /// its data), or when none hears it and some answer for another cluster (the data directory is another cluster's).
    /// Members that do not answer (all starting together, say) are no reason to wait or to refuse.
    /// </summary>
    private async Task AskPeersAsync(string directory, bool fresh, CancellationToken cancellationToken)
    {
        if (!Peers.Keys.Any(id => id != Self))
        {
            return;
        }
        var answers = await Transport.HelloAsync(TimeSpan.FromMilliseconds(_transportOptions.ConnectTimeoutMs), cancellationToken).ConfigureAwait(false);
        if (answers.RefusedForGood.Count > 0)
        {
            var (peer, reason) = answers.RefusedForGood[0];
            throw new StorageException($"{directory} is {(fresh ? "new" : "not the one the cluster knows")}, and {peer} refuses this node: {reason}");
        }
        if (answers.Heard == 0 && answers.OtherCluster.Count > 0)
        {
            var (peer, reason) = answers.OtherCluster[0];
            throw new StorageException($"{directory} holds data of cluster {Identity.ClusterIdText}, but no member it names hears it ({peer}: {reason})");
        }
    }

    private static ClusterConfig? LastConfig(PersistentState state)
    {
        for (var i = state.Entries.Count - 1; i >= 0; i--)
        {
            if (state.Entries[i].Kind == EntryKind.Config)
            {
                return ClusterConfig.Decode(state.Entries[i].Data.Span);
            }
        }
        return null;
    }

    /// <summary>Peer URLs from a configuration's member addresses; a member without one keeps the URL this node was started with.</summary>
    private static Dictionary<NodeId, Uri> PeerUrlsOf(ClusterConfig config, IReadOnlyDictionary<NodeId, Uri> fallback)
    {
        var peers = new Dictionary<NodeId, Uri>();
        foreach (var member in config.Members)
        {
            var address = config.Addresses.TryGetValue(member, out var text) ? MemberAddress.Parse(text).Peer : null;
            if ((address ?? fallback.GetValueOrDefault(member)) is { } url)
            {
                peers[member] = url;
            }
        }
        return peers;
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
            var target = BestSuccessor(status.Raft);
            if (target.IsNone || !Loop.TransferLeadershipAsync(target).WaitAsync(TimeSpan.FromSeconds(1)).GetAwaiter().GetResult())
            {
                return;
            }
            var deadline = DateTime.UtcNow + TimeSpan.FromMilliseconds(_node.TickMs * _raft.ElectionTimeoutTicks * 2);
            while (DateTime.UtcNow < deadline && Loop.KnownRole == Role.Leader)
            {
                Thread.Sleep(20);
            }
            var takenOver = Loop.KnownRole != Role.Leader;
            LogHandedOff(Self, target, takenOver);
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

    /// <summary>The voter to hand leadership to: connected, heard from recently, and the most caught up; none if no voter is.</summary>
    private NodeId BestSuccessor(RaftStatus raft)
    {
        var connected = Transport.Connected;
        return raft.Peers
            .Where(p => raft.Config.Voters.Contains(p.Id) && p.RecentActive && connected.GetValueOrDefault(p.Id))
            .OrderByDescending(p => p.Match).ThenBy(p => p.Id).FirstOrDefault()?.Id ?? NodeId.None;
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

    public async Task<NodeAnswer> AskLeaderAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken = default)
    {
        if (TooLarge(request) is { } refused)
        {
            return refused;
        }
        var leader = Loop.KnownLeader;
        if (leader == Self)
        {
            var (answer, hint) = await AskHereAsync(request, cancellationToken).ConfigureAwait(false);
            if (answer is not null)
            {
                return answer;
            }
            leader = hint;
        }
        return await ForwardAsync(ForwardKind.LeaderRequest, request, leader, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The application's leader request, answered here; no answer (and the leader known) when this node does not lead.</summary>
    private async Task<(NodeAnswer? Answer, NodeId LeaderHint)> AskHereAsync(ReadOnlyMemory<byte> request, CancellationToken cancellationToken)
    {
        if (Loop.KnownLeader != Self)
        {
            return (null, Loop.KnownLeader);
        }
        if (_leaderRequests is null)
        {
            return (NodeAnswer.Failed(AnswerStatus.Invalid, Self, "this application answers no leader requests; nothing was done"), default);
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_node.RequestTimeout);
        try
        {
            var term = Loop.KnownTerm;
            var result = await _leaderRequests.HandleAsync(request, timeout.Token).ConfigureAwait(false);
            return (new NodeAnswer(AnswerStatus.Ok, result, LogIndex.Zero, term, Self, null), default);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (NodeAnswer.Failed(AnswerStatus.TimedOut, Self, $"no answer within {_node.RequestTimeoutMs} ms"), default);
        }
        catch (FormatException error)
        {
            return (NodeAnswer.Failed(AnswerStatus.Invalid, Self, $"the leader could not read the request ({error.Message}); nothing was done"), default);
        }
    }

    /// <summary>A request a follower forwarded: run here, or say that this node does not lead; never forwarded again.</summary>
    public async Task<NodeAnswer> ExecuteForwardedAsync(ForwardedRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (TooLarge(request.Command) is { } refused)
        {
            return refused;
        }
        var (answer, hint) = request.Kind switch
        {
            ForwardKind.Write => await ProposeHereAsync(request.Command, cancellationToken).ConfigureAwait(false),
            ForwardKind.LinearizableRead => await ReadHereAsync(request.Command, linearizable: true, cancellationToken).ConfigureAwait(false),
            ForwardKind.ConfChange when ConfChangeCodec.Decode(request.Command.Span) is { } change =>
                await ChangeHereAsync(change, cancellationToken).ConfigureAwait(false),
            ForwardKind.TransferLeadership when TransferTarget(request.Command.Span) is { } target =>
                await TransferHereAsync(target, cancellationToken).ConfigureAwait(false),
            ForwardKind.LeaderRequest => await AskHereAsync(request.Command, cancellationToken).ConfigureAwait(false),
            _ => (NodeAnswer.Failed(AnswerStatus.Invalid, Self, $"a forwarded {request.Kind} this node cannot read; nothing was done"), default),
        };
        return answer ?? NodeAnswer.Failed(AnswerStatus.NoLeader, hint, "the leader changed while the request was forwarded");
    }

    // ---------------------------------------------------------------- membership and leadership (the /cluster API)

    /// <summary>
    /// Changes the membership through the leader (forwarded if this node does not lead). Answers once the change is
    /// applied (a joint one: once the configuration leaving it is); the result is the encoded configuration then in force.
    /// </summary>
    public async Task<NodeAnswer> ChangeMembershipAsync(ConfChange change, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(change);
        var leader = Loop.KnownLeader;
        if (leader == Self)
        {
            var (answer, hint) = await ChangeHereAsync(change, cancellationToken).ConfigureAwait(false);
            if (answer is not null)
            {
                return answer;
            }
            leader = hint;
        }
        return await ForwardAsync(ForwardKind.ConfChange, ConfChangeCodec.Encode(change), leader, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Hands leadership to <paramref name="target"/> (none: the most caught-up voter) and answers with the new leader.</summary>
    public async Task<NodeAnswer> TransferLeadershipAsync(NodeId target, CancellationToken cancellationToken)
    {
        var leader = Loop.KnownLeader;
        if (leader == Self)
        {
            var (answer, hint) = await TransferHereAsync(target, cancellationToken).ConfigureAwait(false);
            if (answer is not null)
            {
                return answer;
            }
            leader = hint;
        }
        return await ForwardAsync(ForwardKind.TransferLeadership, Encoding.UTF8.GetBytes(target.IsNone ? "" : target.ToString()), leader, cancellationToken)
            .ConfigureAwait(false);
    }

    private static NodeId? TransferTarget(ReadOnlySpan<byte> command)
    {
        var text = Encoding.UTF8.GetString(command);
        return text.Length == 0 ? NodeId.None : NodeId.TryParse(text, out var id) ? id : null;
    }

    private async Task<(NodeAnswer? Answer, NodeId LeaderHint)> ChangeHereAsync(ConfChange change, CancellationToken cancellationToken)
    {
        // Two entries must commit (a joint configuration and the one leaving it): twice a request's time.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_node.RequestTimeout * 2);
        ProposalOutcome outcome;
        try
        {
            outcome = await Loop.ChangeMembershipAsync(change).WaitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (NodeAnswer.Failed(AnswerStatus.Unknown, Loop.KnownLeader, $"no outcome within {_node.RequestTimeoutMs * 2} ms; see GET /cluster/members"), default);
        }
        return Answer(outcome);
    }

    private async Task<(NodeAnswer? Answer, NodeId LeaderHint)> TransferHereAsync(NodeId target, CancellationToken cancellationToken)
    {
        var config = Config;
        if (!target.IsNone && !config.Voters.Contains(target))
        {
            return (NodeAnswer.Failed(AnswerStatus.Invalid, Self, $"{target} is not a voter of {config}"), default);
        }
        if (target == Self)
        {
            return (new NodeAnswer(AnswerStatus.Ok, default, LogIndex.Zero, Loop.KnownTerm, Self, null), default);
        }
        if (target.IsNone)
        {
            var status = await Loop.GetStatusAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
            if (status.Raft.Role != Role.Leader)
            {
                return (null, status.Raft.Leader);
            }
            target = BestSuccessor(status.Raft);
            if (target.IsNone)
            {
                return (NodeAnswer.Failed(AnswerStatus.Conflict, Self, "no other voter is connected and caught up enough to take over"), default);
            }
        }
        if (!await Loop.TransferLeadershipAsync(target).WaitAsync(cancellationToken).ConfigureAwait(false))
        {
            return Loop.KnownRole != Role.Leader
                ? (null, Loop.KnownLeader)
                : (NodeAnswer.Failed(AnswerStatus.Conflict, Self, "the leader cannot hand over now (a transfer is under way, or no other voter is known)"), default);
        }
        // The target campaigns as soon as it has caught up. The core gives up a transfer after an election timeout (its
        // TimeoutNow may have been lost with a broken stream): ask again while this node still leads, for four of them.
        var electionTimeout = TimeSpan.FromMilliseconds(_node.TickMs * _raft.ElectionTimeoutTicks);
        var deadline = DateTime.UtcNow + (electionTimeout * 4);
        var askAgain = DateTime.UtcNow + electionTimeout;
        while (DateTime.UtcNow < deadline && (Loop.KnownLeader == Self || Loop.KnownLeader.IsNone))
        {
            await Task.Delay(20, cancellationToken).ConfigureAwait(false);
            if (DateTime.UtcNow >= askAgain && Loop.KnownRole == Role.Leader)
            {
                askAgain = DateTime.UtcNow + electionTimeout;
                await Loop.TransferLeadershipAsync(target).WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        var leader = Loop.KnownLeader;
        return leader == Self || leader.IsNone
            ? (NodeAnswer.Failed(AnswerStatus.Conflict, leader, "the transfer did not complete in time; this node leads on or no leader is known yet"), default)
            : (new NodeAnswer(AnswerStatus.Ok, default, LogIndex.Zero, Loop.KnownTerm, leader, null), default);
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
        ProposalOutcome outcome;
        try
        {
            // One timer and one registration, where a linked token source with CancelAfter took two of each: this is the write path.
            outcome = await Loop.ProposeAsync(command).WaitAsync(_node.RequestTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return (NodeAnswer.Failed(AnswerStatus.Unknown, Loop.KnownLeader, $"no outcome within {_node.RequestTimeoutMs} ms"), default);
        }
        _metrics.ProposalOutcome(outcome.Status);
        return Answer(outcome);
    }

    /// <summary>A proposal's outcome as an answer; none (and the core's leader hint) when this node does not lead.</summary>
    private (NodeAnswer? Answer, NodeId LeaderHint) Answer(ProposalOutcome outcome)
    {
        var leader = Loop.KnownLeader;
        return outcome.Status switch
        {
            ProposalStatus.Applied => (new NodeAnswer(AnswerStatus.Ok, outcome.Result, outcome.Index, outcome.Term, leader, null), default),
            ProposalStatus.NotLeader => (null, outcome.LeaderHint),
            ProposalStatus.Lost => (NodeAnswer.Failed(AnswerStatus.Lost, leader, outcome.Reason ?? "another leader's entry took its place"), default),
            ProposalStatus.Rejected => (NodeAnswer.Failed(AnswerStatus.Unavailable, leader, outcome.Reason ?? "refused"), default),
            ProposalStatus.Conflict => (NodeAnswer.Failed(AnswerStatus.Conflict, leader, outcome.Reason ?? "refused for now"), default),
            ProposalStatus.Invalid => (NodeAnswer.Failed(AnswerStatus.Invalid, leader, outcome.Reason ?? "refused"), default),
            _ => (NodeAnswer.Failed(AnswerStatus.Unknown, leader, outcome.Reason ?? "the node lost track of the write"), default),
        };
    }

    /// <summary>Reads on this node. No answer (and the core's leader hint) when a linearizable read finds that this node does not lead.</summary>
    private async Task<(NodeAnswer? Answer, NodeId LeaderHint)> ReadHereAsync(ReadOnlyMemory<byte> query, bool linearizable, CancellationToken cancellationToken)
    {
        ReadOutcome read;
        try
        {
            read = await Loop.ReadAsync(query, linearizable).WaitAsync(_node.RequestTimeout, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
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
            return kind is ForwardKind.Write or ForwardKind.ConfChange
                ? NodeAnswer.Failed(AnswerStatus.Unknown, leader, $"the leader {leader} did not answer the forwarded write ({error.StatusCode})")
                : NodeAnswer.Failed(AnswerStatus.Unavailable, leader, $"the leader {leader} did not answer ({error.StatusCode}); nothing was read");
        }
    }

    // ---------------------------------------------------------------- IPeerHost

    public void Deliver(Message message) => Loop.Deliver(message);

    public void DeliverSnapshot(InstallSnapshot message, ISnapshotWriter staged) => Loop.DeliverSnapshot(message, staged);

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

    void IRaftLoopObserver.ConfigChanged(ClusterConfig config)
    {
        _admission.ConfigChanged(_config, config);
        _config = config;
        RefreshPeers(config);
    }

    private readonly Lock _peersLock = new();

    /// <summary>The transport's peers: the members of <paramref name="config"/>, and the nodes a member vouched for (PeerAdmission).</summary>
    private void RefreshPeers(ClusterConfig config)
    {
        if (config.Members.IsEmpty)
        {
            return; // waiting to be added: keep talking to the members this node was started with
        }
        lock (_peersLock)
        {
            var peers = PeerUrlsOf(config, _peers);
            foreach (var (node, address) in _admission.VouchedAddresses())
            {
                if (node != Self && !peers.ContainsKey(node) && MemberAddress.Parse(address).Peer is { } url)
                {
                    peers[node] = url;
                }
            }
            _peers = peers;
            _transport?.SetPeers(peers);
        }
    }

    // ---------------------------------------------------------------- IPeerHost: who may talk to this node

    public bool PeerCertificatesRequired => _tls.Enabled;

    private PeerTls? PeerTlsOrNone() => _tls.Enabled ? new PeerTls(_tls.LoadCertificate(), TlsTrust.LoadCa(_tls.CaFile)) : null;

    public PeerCredentials Credentials => new(Identity.ClusterId, Identity.Incarnation);

    public PeerRefusal? Admit(NodeId from, PeerCredentials credentials, PeerCall call)
    {
        if (credentials.ClusterId != Identity.ClusterId)
        {
            return new PeerRefusal(false, $"{from} belongs to cluster {NodeIdentity.FormatId(credentials.ClusterId)}; {Self} to cluster {Identity.ClusterIdText}");
        }
        var config = Config;
        // A node waiting to be added has no configuration yet: it hears its cluster.
        if (!config.Members.IsEmpty && _admission.Check(from, credentials.Incarnation, config) == PeerAdmission.Standing.Unknown)
        {
            if (call is PeerCall.Hello or PeerCall.IsMember)
            {
                return null; // any node of the cluster may ask; nothing is recorded
            }
            AskMembersAbout(from, credentials.Incarnation, config);
            return new PeerRefusal(false, $"{from} is not a member of {Self}'s configuration ({config}), and no member has vouched for it yet");
        }
        var refusal = _registry!.Admit(from, credentials.Incarnation);
        return refusal is null ? null : new PeerRefusal(true, refusal);
    }

    public Uri? ClientUrl => _node.HttpUrl;

    private readonly System.Collections.Concurrent.ConcurrentDictionary<NodeId, Uri> _clientUrls = new();

    public void SawClientUrl(NodeId from, Uri clientUrl)
    {
        // Only admitted callers get here; the bound is for a long-lived node that saw many members come and go.
        if (_clientUrls.Count < 1_024 || _clientUrls.ContainsKey(from))
        {
            _clientUrls[from] = clientUrl;
        }
    }

    /// <summary>Where <paramref name="node"/> serves clients: this node's own URL, or what the node said on its last peer call (null if unknown).</summary>
    public Uri? ClientUrlOf(NodeId node) => node == Self ? ClientUrl : _clientUrls.GetValueOrDefault(node);

    public MembershipAnswer IsMember(NodeId node)
    {
        var config = Config;
        return new(config.Contains(node), _registry?.Known(node) ?? 0, config.Addresses.GetValueOrDefault(node) ?? "");
    }

    /// <summary>Asks this node's members, in the background, whether <paramref name="node"/> joined since this node's configuration.</summary>
    private void AskMembersAbout(NodeId node, ulong incarnation, ClusterConfig config)
    {
        if (_transport is not { } transport || !_admission.StartAsking(node))
        {
            return;
        }
        _ = Task.Run(async () =>
        {
            var vouchedBy = NodeId.None;
            string? address = null;
            try
            {
                foreach (var member in config.Members.Where(m => m != Self))
                {
                    var answer = await transport.AskIsMemberAsync(member, node, TimeSpan.FromSeconds(1), _peerStreamsClosing.Token).ConfigureAwait(false);
                    if (answer is { Member: true } named && (named.Incarnation == 0 || named.Incarnation == incarnation))
                    {
                        vouchedBy = member;
                        address = named.Address;
                        break;
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // Stopping.
            }
            finally
            {
                _admission.Answered(node, incarnation, address);
            }
            if (!vouchedBy.IsNone)
            {
                LogVouched(node, vouchedBy, config);
                RefreshPeers(Config); // so that this node can answer it
            }
        });
    }

    public void Refused(NodeId from, string reason)
    {
        _metrics.PeerRefused();
        LogPeerRefused(from, reason);
    }

    public void RefusedBy(NodeId peer, string reason)
    {
        if (Interlocked.Exchange(ref _refused, 1) != 0)
        {
            return;
        }
        // This node's data directory is not the one the cluster knows: it may have voted in a term it forgot. It must not
        // take part, so it stops, loudly.
        LogRefusedByPeer(Self, peer, reason);
        Environment.ExitCode = 3;
        _lifetime.StopApplication();
    }

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "{Node} starting from {Directory} (cluster {Cluster}): last index {LastIndex}, term {Term}, {Config}")]
    private partial void LogStarting(NodeId node, string directory, string cluster, ulong lastIndex, ulong term, ClusterConfig config);

    [LoggerMessage(EventId = 312, Level = LogLevel.Information, Message = "{Node} serves clients at {Http} (bound to {HttpListen}) and peers at {Peer} (bound to {PeerListen})")]
    private partial void LogListening(NodeId node, string http, string httpListen, Uri peer, string peerListen);

    [LoggerMessage(EventId = 313, Level = LogLevel.Information, Message = "{Node} also serves clients over HTTP/2 without TLS (prior knowledge) at {Http2Listen}")]
    private partial void LogListeningHttp2(NodeId node, Uri http2Listen);

    /// <summary>What a listener binds, as RaftNodeHosting.Listen does: a host name or a wildcard is every address.</summary>
    private static string Bound(Uri url) =>
        url.Host == "localhost" || (url.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6 && url.Host != "0.0.0.0")
            ? url.Authority : "every address, port " + url.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

    [LoggerMessage(EventId = 306, Level = LogLevel.Warning, Message = "{Node} joins cluster {Cluster} through {Member} ({Members} members known); it waits, with no configuration, to be added as a learner")]
    private partial void LogJoining(NodeId node, string member, string cluster, int members);

    [LoggerMessage(EventId = 308, Level = LogLevel.Critical, Message = "FORCED A NEW CLUSTER: {Node} leaves cluster {OldCluster} ({OldConfig}) and starts cluster {NewCluster} of itself alone, from its own log through index {LastIndex}. The old members must never be started again against this cluster; grow it with --join. Restart without --force-new-cluster")]
    private partial void LogForced(NodeId node, string oldCluster, ClusterConfig oldConfig, string newCluster, ulong lastIndex);

    [LoggerMessage(EventId = 309, Level = LogLevel.Warning, Message = "ForceNewCluster: {Node} already is a cluster of itself alone ({Config}); nothing forced. Restart without --force-new-cluster")]
    private partial void LogForcedAlready(NodeId node, ClusterConfig config);

    [LoggerMessage(EventId = 311, Level = LogLevel.Information, Message = "{Node} is heard although not in this node's configuration ({Config}): member {Member} names it (this node lags behind a membership change)")]
    private partial void LogVouched(NodeId node, NodeId member, ClusterConfig config);

    [LoggerMessage(EventId = 310, Level = LogLevel.Warning, Message = "refused a peer call or message from {From}: {Reason}")]
    private partial void LogPeerRefused(NodeId from, string reason);

    [LoggerMessage(EventId = 307, Level = LogLevel.Critical, Message = "{Node} was refused by {Peer}: {Reason}. This node stops (exit code 3)")]
    private partial void LogRefusedByPeer(NodeId node, NodeId peer, string reason);

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
