using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.Extensions.Logging;
using RaftKv.RaftCore;
using Proto = RaftKv.Transport.Protos;

namespace RaftKv.Transport;

/// <summary>Bounds and timings of the peer transport. <see cref="Validate"/> names the field that is wrong.</summary>
public sealed record TransportOptions : IValidatedOptions
{
    /// <summary>Messages waiting for one peer; beyond it new ones are dropped (and counted). Raft tolerates loss.</summary>
    public int OutboxCapacity { get; init; } = 4_096;

    /// <summary>Messages and bytes sent in one stream write.</summary>
    public int MaxBatchMessages { get; init; } = 256;

    public int MaxBatchBytes { get; init; } = 4 * 1024 * 1024;

    /// <summary>The largest gRPC message accepted: one log entry of the storage's largest size and its framing must fit.</summary>
    public int MaxMessageBytes { get; init; } = 17 * 1024 * 1024;

    public int SnapshotChunkBytes { get; init; } = 1024 * 1024;

    /// <summary>Snapshot streams received at once; one more is refused (ResourceExhausted) and its leader tries again later.</summary>
    public int MaxIncomingSnapshots { get; init; } = 2;

    /// <summary>How long a received snapshot stream may wait for its next chunk before it is dropped with nothing stored.</summary>
    public int SnapshotChunkTimeoutMs { get; init; } = 10_000;

    /// <summary>The first wait before reopening a broken stream; it doubles (with jitter) up to <see cref="ReconnectMaxDelayMs"/>.</summary>
    public int ReconnectMinDelayMs { get; init; } = 50;

    public int ReconnectMaxDelayMs { get; init; } = 2_000;

    /// <summary>How long opening a connection to a peer may take.</summary>
    public int ConnectTimeoutMs { get; init; } = 2_000;

    /// <summary>HTTP/2 keep-alive pings find a dead link (a partition drops packets without a reset).</summary>
    public int KeepAlivePingDelayMs { get; init; } = 1_000;

    public int KeepAlivePingTimeoutMs { get; init; } = 2_000;

    public IEnumerable<string> Validate()
    {
        if (OutboxCapacity < 1)
        {
            yield return "OutboxCapacity: must be at least 1";
        }
        if (MaxBatchMessages < 1)
        {
            yield return "MaxBatchMessages: must be at least 1";
        }
        if (MaxBatchBytes < 1024)
        {
            yield return "MaxBatchBytes: must be at least 1024";
        }
        if (SnapshotChunkBytes < 1024 || SnapshotChunkBytes > MaxMessageBytes / 2)
        {
            yield return "SnapshotChunkBytes: must be between 1024 and half of MaxMessageBytes";
        }
        if (MaxIncomingSnapshots < 1)
        {
            yield return "MaxIncomingSnapshots: must be at least 1";
        }
        if (SnapshotChunkTimeoutMs < 1)
        {
            yield return "SnapshotChunkTimeoutMs: must be at least 1";
        }
        if (MaxMessageBytes is < 64 * 1024 or > 1024 * 1024 * 1024)
        {
            yield return "MaxMessageBytes: must be between 65536 and 1073741824";
        }
        if (ReconnectMinDelayMs < 1)
        {
            yield return "ReconnectMinDelayMs: must be at least 1";
        }
        if (ReconnectMaxDelayMs < ReconnectMinDelayMs)
        {
            yield return "ReconnectMaxDelayMs: must be at least ReconnectMinDelayMs";
        }
        if (ConnectTimeoutMs < 1)
        {
            yield return "ConnectTimeoutMs: must be at least 1";
        }
        if (KeepAlivePingDelayMs < 1 || KeepAlivePingTimeoutMs < 1)
        {
            yield return "KeepAlivePingDelayMs/KeepAlivePingTimeoutMs: must be at least 1";
        }
    }
}

/// <summary>What the node offers the transport: where received messages go, where snapshots live, who forwards to it.</summary>
public interface IPeerHost
{
    NodeId Self { get; }

    ISnapshotStore Snapshots { get; }

    /// <summary>Cancelled when the node stops listening to peers: incoming streams end then, so shutdown need not wait for them.</summary>
    CancellationToken PeerStreamsClosing { get; }

    void Deliver(Message message);

    /// <summary>
    /// A received snapshot whose bytes are in <paramref name="staged"/>, checked against their CRC32C but not current. The
    /// node commits the file only if its core installs the snapshot, and disposes (deletes) it otherwise; it owns it now.
    /// </summary>
    void DeliverSnapshot(InstallSnapshot message, ISnapshotWriter staged);

    void ReportUnreachable(NodeId peer);

    void ReportSnapshotSent(NodeId peer, bool succeeded);

    /// <summary>Runs a request a follower forwarded (opaque bytes) on this node; the answer goes back as it is.</summary>
    Task<NodeAnswer> ExecuteForwardedAsync(ForwardedRequest request, CancellationToken cancellationToken);

    /// <summary>What this node says of itself on every call: its cluster and the incarnation of its data directory.</summary>
    PeerCredentials Credentials { get; }

    /// <summary>Where this node serves clients, sent with every call so that peers can show it (the dashboard, GET /cluster/members).</summary>
    Uri? ClientUrl { get; }

    /// <summary>An admitted caller said where it serves clients.</summary>
    void SawClientUrl(NodeId from, Uri clientUrl);

    /// <summary>
    /// Whether a call from <paramref name="from"/> with these credentials is heard; null when it is, else why not: its
    /// cluster, its data directory (incarnation) if it is a member, and for <see cref="PeerCall.Forward"/> membership.
    /// </summary>
    PeerRefusal? Admit(NodeId from, PeerCredentials credentials, PeerCall call);

    /// <summary>A peer message or call was refused: counted.</summary>
    void Refused(NodeId from, string reason);

    /// <summary>Whether <paramref name="node"/> is in this node's configuration in force, and the incarnation it knows for it (0: none).</summary>
    MembershipAnswer IsMember(NodeId node);

    /// <summary>Peers must show a certificate of the cluster CA naming the node they speak for (mutual TLS on).</summary>
    bool PeerCertificatesRequired { get; }

    /// <summary>A peer refused this node for good (its data directory is not the one the cluster knows): the node must stop.</summary>
    void RefusedBy(NodeId peer, string reason);
}

/// <summary>Mutual TLS between peers: this node's certificate (its common name is its node id) and the cluster CA.</summary>
public sealed record PeerTls(System.Security.Cryptography.X509Certificates.X509Certificate2 Certificate,
    System.Security.Cryptography.X509Certificates.X509Certificate2Collection Ca);

/// <summary>A node's cluster id and the incarnation of its data directory, sent as headers with every peer call.</summary>
public readonly record struct PeerCredentials(ulong ClusterId, ulong Incarnation)
{
    public const string ClusterHeader = "raftkv-cluster";
    public const string IncarnationHeader = "raftkv-incarnation";
    public const string FromHeader = "raftkv-from";

    /// <summary>Where the caller serves clients (informational, like etcd's X-PeerURLs): members learn each other's client URLs from it.</summary>
    public const string ClientUrlHeader = "raftkv-client-url";

    public Metadata ToHeaders(NodeId from, Uri? clientUrl = null)
    {
        var headers = new Metadata
        {
            { ClusterHeader, ClusterId.ToString("x16", System.Globalization.CultureInfo.InvariantCulture) },
            { IncarnationHeader, Incarnation.ToString("x16", System.Globalization.CultureInfo.InvariantCulture) },
            { FromHeader, from.ToString() },
        };
        if (clientUrl is not null)
        {
            headers.Add(ClientUrlHeader, clientUrl.ToString());
        }
        return headers;
    }

    /// <summary>The client URL a caller named in its headers, if any and well formed.</summary>
    public static Uri? ClientUrlFrom(Metadata headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        return Uri.TryCreate(headers.GetValue(ClientUrlHeader), UriKind.Absolute, out var url) && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeHttps)
            ? url
            : null;
    }

    /// <summary>The sender and its credentials from a call's headers; null if any is missing or malformed.</summary>
    public static (NodeId From, PeerCredentials Credentials)? FromHeaders(Metadata headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        var style = System.Globalization.NumberStyles.AllowHexSpecifier;
        var culture = System.Globalization.CultureInfo.InvariantCulture;
        return ulong.TryParse(headers.GetValue(ClusterHeader), style, culture, out var cluster)
            && ulong.TryParse(headers.GetValue(IncarnationHeader), style, culture, out var incarnation)
            && NodeId.TryParse(headers.GetValue(FromHeader) ?? "", out var from)
            ? (from, new PeerCredentials(cluster, incarnation))
            : null;
    }
}

/// <summary>A member's answer to "is this node one of your members?": the incarnation it knows (0: none) and the node's address in its configuration.</summary>
public readonly record struct MembershipAnswer(bool Member, ulong Incarnation, string Address);

/// <summary>Which peer call asks to be heard.</summary>
public enum PeerCall
{
    Hello,
    IsMember,
    Stream,
    InstallSnapshot,
    Forward,
}

/// <summary>What the peers said to <see cref="GrpcTransport.HelloAsync"/>.</summary>
public sealed record HelloAnswers(IReadOnlyList<(NodeId Peer, string Reason)> RefusedForGood, IReadOnlyList<(NodeId Peer, string Reason)> OtherCluster, int Heard);

/// <summary>Why a peer's call is refused; <see cref="Fatal"/> when the caller must stop (it lost its data), not retry.</summary>
public sealed record PeerRefusal(bool Fatal, string Reason)
{
    public StatusCode StatusCode => Fatal ? StatusCode.PermissionDenied : StatusCode.FailedPrecondition;
}

/// <summary>
/// What a forwarded request asks of the leader: a write to propose, a read to run through ReadIndex, a membership change, a
/// leadership transfer, or the application's own request that only the leader answers (not a log entry).
/// </summary>
public enum ForwardKind
{
    Write,
    LinearizableRead,
    ConfChange,
    TransferLeadership,
    LeaderRequest,
}

/// <summary>A request a follower hands to the leader: the application's command bytes, which the transport never reads.</summary>
public sealed record ForwardedRequest(NodeId From, ForwardKind Kind, ReadOnlyMemory<byte> Command);

/// <summary>
/// Raft messages over gRPC (HTTP/2): one long-lived client stream per peer carries this node's messages to it in order,
/// in batches, without waiting for replies. Each peer has a bounded outbox: <see cref="Send"/> never blocks, and when the
/// outbox is full (a dead or slow peer) the message is dropped and counted. A broken stream is reopened with exponential
/// backoff and jitter. Snapshots go on their own stream in chunks, so a large transfer never holds up heartbeats.
/// </summary>
public sealed partial class GrpcTransport : ITransport, IAsyncDisposable
{
    private readonly IPeerHost _host;
    private readonly TransportOptions _options;
    private readonly ILogger _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _peersLock = new();

    // Replaced whole when the membership changes (on the node loop); read from any thread without a lock.
    private volatile System.Collections.Immutable.ImmutableSortedDictionary<NodeId, PeerSender> _senders =
        System.Collections.Immutable.ImmutableSortedDictionary<NodeId, PeerSender>.Empty;
    private bool _started;

    private readonly PeerTls? _tls;

    public GrpcTransport(IPeerHost host, IReadOnlyDictionary<NodeId, Uri> peers, TransportOptions options, ILogger logger, PeerTls? tls = null)
    {
        _tls = tls;
        _host = host ?? throw new ArgumentNullException(nameof(host));
        ArgumentNullException.ThrowIfNull(peers);
        _options = options ?? throw new ArgumentNullException(nameof(options));
        var problems = options.Validate().ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentException("invalid transport options: " + string.Join("; ", problems), nameof(options));
        }
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        SetPeers(peers);
    }

    private Metadata Headers => _headers ??= _host.Credentials.ToHeaders(_host.Self, _host.ClientUrl);

    private Metadata? _headers;

    public void Start()
    {
        lock (_peersLock)
        {
            _started = true;
            foreach (var sender in _senders.Values)
            {
                sender.Start(_stopping.Token);
            }
        }
    }

    /// <summary>How long a peer that left the configuration is still streamed to: a removed leader must still hear the acknowledgements that let it commit its own removal, and answers to forwarded requests must find their way back.</summary>
    public static readonly TimeSpan LeftPeerGrace = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The peers to stream to, as the configuration in force names them: new ones get a sender; one that moved to another
    /// address gets a new sender; one no longer named keeps its sender for <see cref="LeftPeerGrace"/>, then it is stopped
    /// (unless it is named again). Messages to a node not listed are dropped.
    /// </summary>
    public void SetPeers(IReadOnlyDictionary<NodeId, Uri> peers)
    {
        ArgumentNullException.ThrowIfNull(peers);
        var stopped = new List<PeerSender>();
        lock (_peersLock)
        {
            if (Volatile.Read(ref _disposed) != 0)
            {
                return;
            }
            _wanted = peers.Keys.ToHashSet();
            var senders = _senders.ToBuilder();
            foreach (var (id, sender) in _senders)
            {
                if (peers.TryGetValue(id, out var address) && address != sender.Address)
                {
                    senders.Remove(id);
                    stopped.Add(sender);
                }
                else if (!peers.ContainsKey(id) && _started)
                {
                    _ = StopIfStillUnwantedAsync(id);
                }
            }
            foreach (var (id, address) in peers)
            {
                if (id != _host.Self && !senders.ContainsKey(id))
                {
                    var sender = new PeerSender(this, id, address);
                    senders[id] = sender;
                    if (_started)
                    {
                        sender.Start(_stopping.Token);
                    }
                    LogPeerAdded(_host.Self, id, address);
                }
            }
            _senders = senders.ToImmutable();
        }
        foreach (var sender in stopped)
        {
            LogPeerRemoved(_host.Self, sender.Peer);
            _ = sender.StopAsync();
        }
    }

    private HashSet<NodeId> _wanted = [];

    private async Task StopIfStillUnwantedAsync(NodeId id)
    {
        try
        {
            await Task.Delay(LeftPeerGrace, _stopping.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return; // the transport stops every sender itself
        }
        PeerSender? stopped = null;
        lock (_peersLock)
        {
            if (Volatile.Read(ref _disposed) == 0 && !_wanted.Contains(id) && _senders.TryGetValue(id, out stopped))
            {
                _senders = _senders.Remove(id);
            }
            else
            {
                stopped = null;
            }
        }
        if (stopped is not null)
        {
            LogPeerRemoved(_host.Self, id);
            await stopped.StopAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The peers this node streams to now.</summary>
    public IReadOnlyDictionary<NodeId, Uri> Peers => _senders.ToDictionary(s => s.Key, s => s.Value.Address);

    public void Send(Message message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (_senders.TryGetValue(message.To, out var sender))
        {
            sender.Enqueue(message);
        }
    }

    /// <summary>Messages dropped per peer because its outbox was full.</summary>
    public IReadOnlyDictionary<NodeId, long> DroppedMessages => _senders.ToDictionary(s => s.Key, s => s.Value.Dropped);

    public IReadOnlyDictionary<NodeId, bool> Connected => _senders.ToDictionary(s => s.Key, s => s.Value.IsConnected);

    /// <summary>Hands a request to <paramref name="leader"/> and returns its answer, or fails (RpcException) after <paramref name="timeout"/>.</summary>
    public async Task<NodeAnswer> ForwardAsync(NodeId leader, ForwardedRequest request, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!_senders.TryGetValue(leader, out var sender))
        {
            throw new InvalidOperationException($"{leader} is not a known peer");
        }
        var reply = await sender.Client.ForwardAsync(new Proto.ForwardRequest
        {
            From = _host.Self.Value,
            Command = UnsafeByteOperations.UnsafeWrap(request.Command), // never written after encoding
            Kind = MessageMapper.ToProto(request.Kind),
        }, headers: Headers, deadline: DateTime.UtcNow + timeout, cancellationToken: cancellationToken).ConfigureAwait(false);
        return MessageMapper.FromProto(reply);
    }

    /// <summary>
    /// Asks every peer whether it would hear this node: which refused it for good (its data directory is not the one they
    /// know), which belong to another cluster, and how many heard it. A peer that does not answer within
    /// <paramref name="timeout"/> counts as none of these.
    /// </summary>
    public async Task<HelloAnswers> HelloAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var calls = _senders.Values.Select(async sender =>
        {
            try
            {
                await sender.Client.HelloAsync(new Proto.HelloRequest(), headers: Headers, deadline: DateTime.UtcNow + timeout,
                    cancellationToken: cancellationToken).ConfigureAwait(false);
                return (sender.Peer, Code: StatusCode.OK, Reason: "");
            }
            catch (RpcException error)
            {
                return (sender.Peer, Code: error.StatusCode, Reason: error.Status.Detail);
            }
        }).ToList();
        var answers = await Task.WhenAll(calls).ConfigureAwait(false);
        return new HelloAnswers(
            [.. answers.Where(a => a.Code == StatusCode.PermissionDenied).Select(a => (a.Peer, a.Reason))],
            [.. answers.Where(a => a.Code == StatusCode.FailedPrecondition).Select(a => (a.Peer, a.Reason))],
            answers.Count(a => a.Code == StatusCode.OK));
    }

    /// <summary>
    /// Asks <paramref name="member"/> whether <paramref name="node"/> is in its configuration in force. Null if
    /// <paramref name="member"/> is not a peer of this node or gave no answer within <paramref name="timeout"/>.
    /// </summary>
    public async Task<MembershipAnswer?> AskIsMemberAsync(NodeId member, NodeId node, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (!_senders.TryGetValue(member, out var sender))
        {
            return null;
        }
        try
        {
            var answer = await sender.Client.IsMemberAsync(new Proto.MemberQuery { Node = node.Value }, headers: Headers,
                deadline: DateTime.UtcNow + timeout, cancellationToken: cancellationToken).ConfigureAwait(false);
            return new MembershipAnswer(answer.Member, answer.Incarnation, answer.Address);
        }
        catch (RpcException)
        {
            return null;
        }
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stopping.CancelAsync().ConfigureAwait(false);
        System.Collections.Immutable.ImmutableSortedDictionary<NodeId, PeerSender> senders;
        lock (_peersLock)
        {
            senders = _senders;
        }
        foreach (var sender in senders.Values)
        {
            await sender.StopAsync().ConfigureAwait(false);
        }
        _stopping.Dispose();
    }

    [LoggerMessage(EventId = 205, Level = LogLevel.Information, Message = "{Self} will stream to {Peer} at {Address}")]
    private partial void LogPeerAdded(NodeId self, NodeId peer, Uri address);

    [LoggerMessage(EventId = 206, Level = LogLevel.Information, Message = "{Self} stopped streaming to {Peer}: it left the configuration or moved")]
    private partial void LogPeerRemoved(NodeId self, NodeId peer);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "{Self} lost its stream to {Peer} ({Reason}); reconnecting with backoff")]
    private partial void LogDisconnected(NodeId self, NodeId peer, string reason);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "{Self} streams to {Peer} at {Address}")]
    private partial void LogConnected(NodeId self, NodeId peer, Uri address);

    [LoggerMessage(EventId = 203, Level = LogLevel.Information, Message = "{Self} sent snapshot {Index}/{Term} to {Peer} ({Bytes} bytes)")]
    private partial void LogSnapshotSent(NodeId self, NodeId peer, ulong index, ulong term, long bytes);

    [LoggerMessage(EventId = 204, Level = LogLevel.Warning, Message = "{Self} could not send snapshot {Index} to {Peer}")]
    private partial void LogSnapshotFailed(NodeId self, NodeId peer, ulong index, Exception error);

    /// <summary>The outbox and the stream to one peer.</summary>
    private sealed class PeerSender
    {
        private readonly GrpcTransport _transport;
        private readonly NodeId _peer;
        private readonly Uri _address;
        private readonly System.Threading.Channels.Channel<Message> _outbox;
        private readonly GrpcChannel _channel;
        private readonly Random _jitter = new();
        private Task? _running;
        private int _snapshotInFlight;
        private long _dropped;
        private volatile bool _connected;

        public PeerSender(GrpcTransport transport, NodeId peer, Uri address)
        {
            _transport = transport;
            _peer = peer;
            _address = address;
            _outbox = System.Threading.Channels.Channel.CreateBounded<Message>(new System.Threading.Channels.BoundedChannelOptions(transport._options.OutboxCapacity)
            {
                SingleReader = true,
                FullMode = System.Threading.Channels.BoundedChannelFullMode.Wait,
            });
            _channel = GrpcChannel.ForAddress(address, new GrpcChannelOptions
            {
                MaxReceiveMessageSize = transport._options.MaxMessageBytes,
                MaxSendMessageSize = transport._options.MaxMessageBytes,
                HttpHandler = new SocketsHttpHandler
                {
                    EnableMultipleHttp2Connections = true,
                    KeepAlivePingDelay = TimeSpan.FromMilliseconds(transport._options.KeepAlivePingDelayMs),
                    KeepAlivePingTimeout = TimeSpan.FromMilliseconds(transport._options.KeepAlivePingTimeoutMs),
                    KeepAlivePingPolicy = HttpKeepAlivePingPolicy.Always,
                    ConnectTimeout = TimeSpan.FromMilliseconds(transport._options.ConnectTimeoutMs),
                    PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
                    SslOptions = transport._tls is { } tls
                        ? new System.Net.Security.SslClientAuthenticationOptions
                        {
                            ClientCertificates = [tls.Certificate],
                            RemoteCertificateValidationCallback = RaftKv.Contracts.TlsTrust.ServerValidator(tls.Ca),
                        }
                        : new System.Net.Security.SslClientAuthenticationOptions(),
                },
            });
            Client = new Proto.RaftPeer.RaftPeerClient(_channel);
        }

        public Proto.RaftPeer.RaftPeerClient Client { get; }

        public NodeId Peer => _peer;

        public Uri Address => _address;

        public long Dropped => Interlocked.Read(ref _dropped);

        public bool IsConnected => _connected;

        public void Enqueue(Message message)
        {
            if (!_outbox.Writer.TryWrite(message))
            {
                Interlocked.Increment(ref _dropped);
            }
        }

        private void ReportRefusal(Exception? error)
        {
            if (error is RpcException { StatusCode: StatusCode.PermissionDenied } refused)
            {
                _transport._host.RefusedBy(_peer, refused.Status.Detail);
            }
        }

        public void Start(CancellationToken stopping) => _running = Task.Run(() => RunAsync(stopping), CancellationToken.None);

        public async Task StopAsync()
        {
            _outbox.Writer.TryComplete();
            if (_running is not null)
            {
                try
                {
                    await _running.ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // Stopping.
                }
            }
            _channel.Dispose();
        }

        private async Task RunAsync(CancellationToken stopping)
        {
            var delay = TimeSpan.FromMilliseconds(_transport._options.ReconnectMinDelayMs);
            while (!stopping.IsCancellationRequested)
            {
                try
                {
                    using var call = Client.Stream(headers: _transport.Headers, cancellationToken: stopping);
                    // The call's end also ends a wait for messages: a call that failed (the peer was not yet listening, or
                    // went away) is opened again at once, so that the peer hears this node's headers (its client URL) even
                    // when this node has nothing to tell it, as a follower has nothing to tell another follower. One source
                    // per call, so that a wait costs no more than the channel's own operation.
                    using var ended = CancellationTokenSource.CreateLinkedTokenSource(stopping);
                    // A refusal comes back as the call's answer, which a client stream sees only when it ends: watch for it.
                    _ = call.ResponseAsync.ContinueWith(
                        (answer, state) =>
                        {
                            ReportRefusal(answer.Exception?.GetBaseException());
                            CancelQuietly((CancellationTokenSource)state!);
                        },
                        ended, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
                    var announced = false;
                    while (true)
                    {
                        bool open;
                        try
                        {
                            open = await _outbox.Reader.WaitToReadAsync(ended.Token).ConfigureAwait(false);
                        }
                        catch (OperationCanceledException) when (!stopping.IsCancellationRequested)
                        {
                            await call.ResponseAsync.ConfigureAwait(false); // throws the call's failure
                            throw new IOException($"{_peer} ended the stream");
                        }
                        if (!open)
                        {
                            return; // outbox completed: stopping
                        }
                        var batch = TakeBatch();
                        if (batch.Messages.Count == 0)
                        {
                            continue;
                        }
                        await call.RequestStream.WriteAsync(batch, stopping).ConfigureAwait(false);
                        if (!announced)
                        {
                            announced = true;
                            _connected = true;
                            delay = TimeSpan.FromMilliseconds(_transport._options.ReconnectMinDelayMs);
                            _transport.LogConnected(_transport._host.Self, _peer, _address);
                        }
                    }
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception error) when (error is RpcException or IOException or HttpRequestException or InvalidOperationException)
                {
                    ReportRefusal(error);
                    if (_connected)
                    {
                        _transport.LogDisconnected(_transport._host.Self, _peer, error.Message);
                    }
                    _connected = false;
                    _transport._host.ReportUnreachable(_peer);
                }
                // Exponential backoff with jitter, so that peers restarting together do not reconnect in lockstep.
                var wait = delay + TimeSpan.FromMilliseconds(_jitter.Next(0, (int)Math.Max(1, delay.TotalMilliseconds / 2)));
                try
                {
                    await Task.Delay(wait, stopping).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, TimeSpan.FromMilliseconds(_transport._options.ReconnectMaxDelayMs).Ticks));
            }
        }

        /// <summary>The call ended: the source of its wait may already be disposed, when the call ended after the loop left it.</summary>
        private static void CancelQuietly(CancellationTokenSource ended)
        {
            try
            {
                ended.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The loop left this call already.
            }
        }

        private Proto.MessageBatch TakeBatch()
        {
            var batch = new Proto.MessageBatch();
            var bytes = 0;
            while (batch.Messages.Count < _transport._options.MaxBatchMessages && bytes < _transport._options.MaxBatchBytes
                && _outbox.Reader.TryRead(out var message))
            {
                if (message is InstallSnapshot install)
                {
                    StartSnapshot(install);
                    continue;
                }
                batch.Messages.Add(MessageMapper.ToProto(message));
                bytes += MessageMapper.EstimateBytes(message);
            }
            return batch;
        }

        private void StartSnapshot(InstallSnapshot install)
        {
            if (Interlocked.CompareExchange(ref _snapshotInFlight, 1, 0) != 0)
            {
                return; // one at a time per peer; the leader asks again if it still needs one
            }
            _ = Task.Run(async () =>
            {
                try
                {
                    var bytes = await SendSnapshotAsync(install, _transport._stopping.Token).ConfigureAwait(false);
                    _transport.LogSnapshotSent(_transport._host.Self, _peer, install.Snapshot.Index.Value, install.Snapshot.Term.Value, bytes);
                    _transport._host.ReportSnapshotSent(_peer, true);
                }
                catch (Exception error) when (error is RpcException or IOException or HttpRequestException or StorageException or OperationCanceledException)
                {
                    _transport.LogSnapshotFailed(_transport._host.Self, _peer, install.Snapshot.Index.Value, error);
                    _transport._host.ReportSnapshotSent(_peer, false);
                }
                finally
                {
                    Interlocked.Exchange(ref _snapshotInFlight, 0);
                }
            });
        }

        private async Task<long> SendSnapshotAsync(InstallSnapshot install, CancellationToken stopping)
        {
            using var source = _transport._host.Snapshots.OpenRead(install.Snapshot);
            using var call = Client.InstallSnapshot(headers: _transport.Headers, cancellationToken: stopping);
            var buffer = new byte[_transport._options.SnapshotChunkBytes];
            var first = true;
            long sent = 0;
            var crc = new System.IO.Hashing.Crc32(System.IO.Hashing.Crc32ParameterSet.Crc32C);
            while (true)
            {
                var read = await FillAsync(source, buffer, stopping).ConfigureAwait(false);
                var last = read < buffer.Length;
                crc.Append(buffer.AsSpan(0, read));
                var chunk = new Proto.SnapshotChunk { Data = Google.Protobuf.ByteString.CopyFrom(buffer, 0, read), Last = last };
                if (last)
                {
                    chunk.Crc32C = crc.GetCurrentHashAsUInt32(); // the receiver checks the bytes it stored against it
                }
                if (first)
                {
                    chunk.Message = MessageMapper.ToProto(install);
                    first = false;
                }
                await call.RequestStream.WriteAsync(chunk, stopping).ConfigureAwait(false);
                sent += read;
                if (last)
                {
                    break;
                }
            }
            await call.RequestStream.CompleteAsync().ConfigureAwait(false);
            var received = await call.ResponseAsync.ConfigureAwait(false);
            return received.Stored ? sent : throw new IOException($"{_peer} did not store the snapshot");
        }

        private static async Task<int> FillAsync(Stream source, byte[] buffer, CancellationToken cancellationToken)
        {
            var total = 0;
            while (total < buffer.Length)
            {
                var read = await source.ReadAsync(buffer.AsMemory(total), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    break;
                }
                total += read;
            }
            return total;
        }
    }
}
