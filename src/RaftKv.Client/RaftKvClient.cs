using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using RaftKv.Contracts;

namespace RaftKv.Client;

public sealed record RaftKvClientOptions
{
    /// <summary>Any nodes of the cluster; the client finds the leader among them.</summary>
    public IReadOnlyList<Uri> Endpoints { get; init; } = [new("http://127.0.0.1:8080")];

    /// <summary>How long one operation may take, retries included.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How long one HTTP attempt may take (the server answers 504 after its own request timeout, 5 s by default).</summary>
    public TimeSpan AttemptTimeout { get; init; } = TimeSpan.FromSeconds(7);

    public int MaxAttempts { get; init; } = 10;

    public TimeSpan RetryBaseDelay { get; init; } = TimeSpan.FromMilliseconds(50);

    public TimeSpan RetryMaxDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>This client's session id; one is made up if none is given. Use one id per writer.</summary>
    public string? ClientId { get; init; }

    /// <summary>The cluster CA (for https:// endpoints): a node's certificate must chain to it. Null: the machine's trust store.</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2Collection? TrustedCa { get; init; }

    /// <summary>A bearer token (for a cluster with client tokens on); sent with every request, never logged.</summary>
    public string? Token { get; init; }

    /// <summary>The sequence number of this client's next write (for a client that resumes a session it saved).</summary>
    public ulong NextSequence { get; init; } = 1;

    /// <summary>
    /// Speak HTTP/2, multiplexing the requests over one connection per node: to http:// endpoints that are nodes'
    /// HTTP/2 listeners (RaftKv:Node:ListenHttp2, prior knowledge), or to https:// endpoints (negotiated by TLS).
    /// False: HTTP/1.1, one connection per request in flight.
    /// </summary>
    public bool Http2 { get; init; }
}

/// <summary>
/// A client for a RaftKv cluster. It keeps a list of endpoints, learns which one leads and sends there first, and retries
/// with exponential backoff and jitter when a node is down, has no leader, or cannot tell the outcome in time. Retrying a
/// write is safe because every write carries this client's session (client id and a sequence number): the cluster applies
/// it at most once. Writes through one client are therefore sent one at a time; reads run concurrently. For concurrent
/// writers, use one client each (they may share an <see cref="HttpMessageHandler"/>).
/// </summary>
public sealed partial class RaftKvClient : IDisposable
{
    private static readonly Uri CommandPath = new("/command", UriKind.Relative);
    private readonly RaftKvClientOptions _options;
    private readonly HttpClient _http;
    private readonly SemaphoreSlim _writes = new(1, 1);
    private readonly Dictionary<string, Uri> _nodes = new(StringComparer.Ordinal);
    private readonly Dictionary<Uri, Uri> _commandUris = []; // endpoint → its /command, built once
    private readonly Lock _gate = new();
    private readonly HashSet<string> _lookedUp = new(StringComparer.Ordinal); // leaders whose endpoint we asked for
    private Uri? _leader;
    private string? _unmappedLeader; // a leader named in an answer whose endpoint this client has not seen yet
    private int _next;
    private ulong _sequence;

    public RaftKvClient(RaftKvClientOptions options, HttpMessageHandler? handler = null)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if (options.Endpoints.Count == 0)
        {
            throw new ArgumentException("at least one endpoint is needed", nameof(options));
        }
        foreach (var endpoint in options.Endpoints)
        {
            if (!endpoint.IsAbsoluteUri || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
            {
                throw new ArgumentException($"'{endpoint}' is not an http:// or https:// URL", nameof(options));
            }
            _commandUris[endpoint] = new Uri(endpoint, CommandPath);
        }
        _http = handler is null
            ? new HttpClient(new SocketsHttpHandler
            {
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                ConnectTimeout = TimeSpan.FromSeconds(2),
                SslOptions = options.TrustedCa is { } ca
                    ? new System.Net.Security.SslClientAuthenticationOptions { RemoteCertificateValidationCallback = TlsTrust.ServerValidator(ca) }
                    : new System.Net.Security.SslClientAuthenticationOptions(),
            })
            : new HttpClient(handler, disposeHandler: false);
        _http.Timeout = System.Threading.Timeout.InfiniteTimeSpan; // each attempt has its own timeout
        if (options.Http2)
        {
            _http.DefaultRequestVersion = HttpVersion.Version20;
            _http.DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact; // prior knowledge on http://, ALPN on https://
        }
        if (options.Token is { } token)
        {
            _http.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }
        ClientId = options.ClientId ?? "client-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(8)).ToLowerInvariant();
        if (options.NextSequence == 0)
        {
            throw new ArgumentException("sequence numbers start at 1", nameof(options));
        }
        _sequence = options.NextSequence - 1;
    }

    public string ClientId { get; }

    /// <summary>A request in the HTTP version this client speaks (what HttpClient's own helpers take from its defaults).</summary>
    private HttpRequestMessage NewRequest(HttpMethod method, Uri uri) =>
        new(method, uri) { Version = _http.DefaultRequestVersion, VersionPolicy = _http.DefaultVersionPolicy };

    internal RaftKvClientOptions Options => _options;

    /// <summary>The endpoint this client currently sends to first, if it learned one.</summary>
    public Uri? KnownLeader
    {
        get
        {
            lock (_gate)
            {
                return _leader;
            }
        }
    }

    public Task<KvResponse> GetAsync(string key, Consistency consistency = Consistency.Linearizable, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        return SendAsync(new CommandRequest { Type = "GET", Key = key, Consistency = consistency == Consistency.Stale ? "stale" : null }, write: false, cancellationToken);
    }

    /// <summary>
    /// One page of the keys that start with <paramref name="prefix"/> ("" for all), in ordinal key order, after the key
    /// <paramref name="after"/>; at most <paramref name="limit"/> (1 to 1,000). When the answer says More, ask again with
    /// after = its Next. With <paramref name="countOnly"/>, only Count.
    /// </summary>
    public Task<KvListResponse> ListAsync(string prefix, int limit = 100, string? after = null, bool countOnly = false,
        Consistency consistency = Consistency.Linearizable, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prefix);
        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, 1_000);
        var query = new System.Text.StringBuilder("/kv?prefix=").Append(Uri.EscapeDataString(prefix))
            .Append("&limit=").Append(limit.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (after is not null)
        {
            query.Append("&after=").Append(Uri.EscapeDataString(after));
        }
        if (countOnly)
        {
            query.Append("&countOnly=true");
        }
        if (consistency == Consistency.Stale)
        {
            query.Append("&consistency=stale");
        }
        return AdminAsync(HttpMethod.Get, query.ToString(), null, ContractsJson.Default.KvListResponse, change: false, cancellationToken);
    }

    /// <summary>Every key with <paramref name="prefix"/>, page after page (each page a linearizable read of its own).</summary>
    public async IAsyncEnumerable<KvListItem> ListAllAsync(string prefix, int pageSize = 1_000, Consistency consistency = Consistency.Linearizable,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        string? after = null;
        while (true)
        {
            var page = await ListAsync(prefix, pageSize, after, countOnly: false, consistency, cancellationToken).ConfigureAwait(false);
            foreach (var item in page.Items)
            {
                yield return item;
            }
            if (!page.More || page.Next is null)
            {
                yield break;
            }
            after = page.Next;
        }
    }

    /// <summary>
    /// A transaction (POST /txn): if every comparison holds, the success operations run, else the failure ones, as one
    /// write. It carries this client's session (the request's clientId and seq are set here), so retries apply it once.
    /// A PUT may name a lease (<see cref="TxnOperation.Lease"/>); if the branch that ran names one that does not exist,
    /// none of its operations ran and the answer says <see cref="TxnResponse.LeaseNotFound"/> (no results).
    /// </summary>
    public async Task<TxnResponse> TxnAsync(TxnRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        await _writes.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            request.ClientId = ClientId;
            request.Seq = ++_sequence;
            var body = JsonSerializer.SerializeToUtf8Bytes(request, ContractsJson.Default.TxnRequest);
            return await AdminAsync(HttpMethod.Post, "/txn", body, ContractsJson.Default.TxnResponse, change: false, cancellationToken, session: true,
                leaseNotFound: refused => new TxnResponse(false, [], refused.Index, refused.Term, refused.Leader, refused.Error)).ConfigureAwait(false);
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>How long a watch stream may stay silent (the server sends a keep-alive every 15 s) before it is resumed elsewhere.</summary>
    private static readonly TimeSpan WatchSilence = TimeSpan.FromSeconds(35);

    /// <summary>
    /// Every change of <paramref name="key"/> (or, with <paramref name="isPrefix"/>, of the keys that start with it), from
    /// <paramref name="fromRevision"/> (null: from the moment the first node answers), in order. A broken stream is
    /// resumed on the next endpoint after the last change received (Last-Event-ID), so nothing is missed or repeated; it
    /// gives up after MaxAttempts failed connections in a row (ClusterUnavailableException). A position no node keeps any
    /// longer (every endpoint in turn answered 410 or ended its stream with a "compacted" event) throws <see cref="WatchCompactedException"/>. It ends only when <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    public async IAsyncEnumerable<WatchChange> WatchAsync(string key, bool isPrefix = false, ulong? fromRevision = null, bool previousValues = false,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(key);
        var query = (isPrefix ? "/watch?prefix=" : "/watch?key=") + Uri.EscapeDataString(key) + (previousValues ? "&prevValue=true" : "")
            + (fromRevision is { } from ? "&fromRevision=" + from.ToString(System.Globalization.CultureInfo.InvariantCulture) : "");
        string? lastId = null;
        var failures = 0;
        var gone = new HashSet<Uri>(); // the nodes that said they no longer keep the position, since the last change received
        string? lastProblem = null;
        for (var attempt = 0; !cancellationToken.IsCancellationRequested; attempt++)
        {
            if (failures >= _options.MaxAttempts)
            {
                throw new ClusterUnavailableException($"the watch could not be resumed on any node ({lastProblem})");
            }
            if (failures > 0)
            {
                await Task.Delay(Backoff(failures), cancellationToken).ConfigureAwait(false);
            }
            var endpoint = PickEndpoint(attempt + 1); // any node serves a watch: round robin, not the leader
            if (gone.Contains(endpoint))
            {
                // Ask the nodes that have not said so yet: one that did not answer may still keep the position.
                endpoint = _options.Endpoints.FirstOrDefault(e => !gone.Contains(e)) ?? endpoint;
            }
            using var request = NewRequest(HttpMethod.Get, new Uri(endpoint, query));
            if (lastId is not null)
            {
                request.Headers.TryAddWithoutValidation("Last-Event-ID", lastId);
            }
            HttpResponseMessage response;
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            connect.CancelAfter(_options.AttemptTimeout);
            try
            {
                response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, connect.Token).ConfigureAwait(false);
                connect.CancelAfter(Timeout.Infinite); // the connect time is up; the stream lasts
            }
            catch (Exception error) when (error is HttpRequestException or IOException || (error is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                failures++;
                lastProblem = $"{endpoint}: {error.Message}";
                continue;
            }
            using (response)
            {
                if (response.StatusCode == HttpStatusCode.Gone)
                {
                    // A node restarted from a snapshot keeps the changes since that snapshot only; one that kept running
                    // may still have the position: every endpoint is asked before the watch gives up.
                    var problem = await ReadProblemAsync(response, cancellationToken).ConfigureAwait(false);
                    lastProblem = $"{endpoint}: {problem?.Detail ?? "the watch's position is no longer kept"}";
                    gone.Add(endpoint);
                    if (!gone.IsSupersetOf(_options.Endpoints))
                    {
                        continue;
                    }
                    throw new WatchCompactedException(problem?.Detail ?? "the watch's position is no longer kept");
                }
                if ((int)response.StatusCode is 400 or 401 or 403)
                {
                    var problem = await ReadProblemAsync(response, cancellationToken).ConfigureAwait(false);
                    throw new InvalidRequestException(problem?.Detail ?? response.ReasonPhrase ?? "invalid watch", (int)response.StatusCode, problem?.Field);
                }
                if (!response.IsSuccessStatusCode)
                {
                    failures++;
                    lastProblem = $"{endpoint} answered {(int)response.StatusCode} {response.ReasonPhrase}";
                    continue;
                }
                failures = 0;
                var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false));
                string? id = null, type = null, data = null;
                while (true)
                {
                    string? line;
                    // A node sends a keep-alive every 15 s: silence for longer means the node or the link is gone (a
                    // paused process or a partition closes nothing).
                    using var silence = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                    silence.CancelAfter(WatchSilence);
                    try
                    {
                        line = await reader.ReadLineAsync(silence.Token).ConfigureAwait(false);
                    }
                    catch (Exception error) when (error is HttpRequestException or IOException
                        || (error is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                    {
                        lastProblem = $"{endpoint}: {(error is OperationCanceledException ? "silent for " + WatchSilence.TotalSeconds + " s" : error.Message)}";
                        break; // resume elsewhere
                    }
                    if (line is null)
                    {
                        break; // the node ended the stream (it stopped): resume elsewhere
                    }
                    if (line.StartsWith(": watching", StringComparison.Ordinal) && lastId is null
                        && line.LastIndexOf(' ') is var space and > 0 && ulong.TryParse(line.AsSpan(space + 1), out var start))
                    {
                        lastId = start.ToString(System.Globalization.CultureInfo.InvariantCulture); // pin "from now" to where the first node started
                        continue;
                    }
                    if (line.Length > 0)
                    {
                        var colon = line.IndexOf(':', StringComparison.Ordinal);
                        if (colon > 0)
                        {
                            var value = line[(colon + 1)..].TrimStart();
                            switch (line[..colon])
                            {
                                case "id": id = value; break;
                                case "event": type = value; break;
                                case "data": data = value; break;
                            }
                        }
                        continue;
                    }
                    if (type == "compacted")
                    {
                        // This node's history moved past the position (it fell behind and caught up by a snapshot, or
                        // this watcher was too slow): another node may still have it.
                        lastProblem = $"{endpoint}: no longer keeps changes after {lastId}: {data}";
                        gone.Add(endpoint);
                        if (!gone.IsSupersetOf(_options.Endpoints))
                        {
                            break;
                        }
                        throw new WatchCompactedException($"no node keeps changes after {lastId} any longer: {data}");
                    }
                    if (id is not null && data is not null)
                    {
                        var change = JsonSerializer.Deserialize(data, ContractsJson.Default.WatchEventData)
                            ?? throw new FormatException("a watch event without data");
                        lastId = id;
                        gone.Clear();
                        yield return new WatchChange(id, change.Type, change.Key, change.Value, change.Revision, change.PrevValue);
                    }
                    (id, type, data) = (null, null, null);
                }
            }
        }
    }

    public Task<KvResponse> SetAsync(string key, string value, CancellationToken cancellationToken = default) =>
        WriteAsync(new CommandRequest { Type = "SET", Key = key, Value = value }, cancellationToken);

    /// <summary>
    /// Sets <paramref name="value"/> with a lease: the key is deleted when lease <paramref name="lease"/> is revoked or
    /// expires. If no such lease exists, nothing is written and the answer says <see cref="KvResponse.LeaseNotFound"/>.
    /// </summary>
    public Task<KvResponse> SetAsync(string key, string value, ulong lease, CancellationToken cancellationToken = default) =>
        WriteAsync(new CommandRequest { Type = "SET", Key = key, Value = value, Lease = LeaseOf(lease) }, cancellationToken);

    public Task<KvResponse> DeleteAsync(string key, CancellationToken cancellationToken = default) =>
        WriteAsync(new CommandRequest { Type = "DELETE", Key = key }, cancellationToken);

    /// <summary>Sets <paramref name="value"/> if the current value is <paramref name="expected"/>; the answer says whether it did.</summary>
    public Task<KvResponse> CompareAndSetAsync(string key, string expected, string value, CancellationToken cancellationToken = default) =>
        WriteAsync(new CommandRequest { Type = "CAS", Key = key, Value = value, Expected = expected }, cancellationToken);

    /// <summary>As <see cref="CompareAndSetAsync(string, string, string, CancellationToken)"/>, the new value held by lease <paramref name="lease"/>.</summary>
    public Task<KvResponse> CompareAndSetAsync(string key, string expected, string value, ulong lease, CancellationToken cancellationToken = default) =>
        WriteAsync(new CommandRequest { Type = "CAS", Key = key, Value = value, Expected = expected, Lease = LeaseOf(lease) }, cancellationToken);

    /// <summary>Sets <paramref name="value"/> if the key was last written at <paramref name="expectedVersion"/> (0: if absent).</summary>
    public Task<KvResponse> CompareVersionAndSetAsync(string key, ulong expectedVersion, string value, CancellationToken cancellationToken = default) =>
        WriteAsync(new CommandRequest { Type = "CAS", Key = key, Value = value, ExpectedVersion = expectedVersion }, cancellationToken);

    /// <summary>As <see cref="CompareVersionAndSetAsync(string, ulong, string, CancellationToken)"/>, the new value held by lease <paramref name="lease"/>.</summary>
    public Task<KvResponse> CompareVersionAndSetAsync(string key, ulong expectedVersion, string value, ulong lease, CancellationToken cancellationToken = default) =>
        WriteAsync(new CommandRequest { Type = "CAS", Key = key, Value = value, ExpectedVersion = expectedVersion, Lease = LeaseOf(lease) }, cancellationToken);

    /// <summary>A lease id as a write carries it: 0 is "no lease" on the wire, so a caller who means a lease must name one.</summary>
    private static ulong LeaseOf(ulong lease)
    {
        ArgumentOutOfRangeException.ThrowIfZero(lease);
        return lease;
    }

    private async Task<KvResponse> WriteAsync(CommandRequest body, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(body.Key, "key"); // before a sequence number is spent on it
        await _writes.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Every attempt of this write carries the same sequence number: retries apply it at most once.
            body.ClientId = ClientId; // the body is this call's own
            body.Seq = ++_sequence;
            return await SendAsync(body, write: true, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _writes.Release();
        }
    }

    private async Task<KvResponse> SendAsync(CommandRequest body, bool write, CancellationToken cancellationToken)
    {
        using var deadline = new OperationDeadline(_options.Timeout, cancellationToken);
        var sent = false; // whether some attempt may have reached a node (for a write: the outcome may be unknown)
        string? lastProblem = null;
        // Serialized once, with a Content-Length: no chunked request body, and every retry sends the same bytes.
        var payload = JsonSerializer.SerializeToUtf8Bytes(body, ContractsJson.Default.CommandRequest);
        for (var attempt = 0; attempt < _options.MaxAttempts && !deadline.IsOver; attempt++)
        {
            if (!await BeforeAttemptAsync(attempt, deadline, cancellationToken).ConfigureAwait(false))
            {
                break;
            }
            var endpoint = PickEndpoint(attempt);
            using var attemptTimeout = deadline.StartAttempt(_options.AttemptTimeout);
            try
            {
                using var content = new ByteArrayContent(payload);
                content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                using var response = await _http.PostAsync(_commandUris[endpoint], content, attemptTimeout.Token).ConfigureAwait(false);
                sent = true;
                Learn(endpoint, response);
                switch ((int)response.StatusCode)
                {
                    case 200 or 409:
                    case 404 when IsAnswer(response): // a write naming a lease that does not exist (lease_not_found)
                        return await ReadAsync(response, ContractsJson.Default.KvResponse, attemptTimeout.Token).ConfigureAwait(false);
                    case 400 or 401 or 403 or 413:
                        var problem = await ReadProblemAsync(response, attemptTimeout.Token).ConfigureAwait(false);
                        throw new InvalidRequestException(problem?.Detail ?? response.ReasonPhrase ?? "invalid request", (int)response.StatusCode, problem?.Field);
                    case 503 or 504:
                        lastProblem = (await ReadProblemAsync(response, attemptTimeout.Token).ConfigureAwait(false))?.Detail ?? response.ReasonPhrase;
                        Forget(endpoint);
                        break;
                    default:
                        lastProblem = $"{endpoint} answered {(int)response.StatusCode} {response.ReasonPhrase}";
                        Forget(endpoint);
                        break;
                }
            }
            catch (HttpRequestException error) when (error.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError)
            {
                lastProblem = $"{endpoint}: {error.Message}"; // never reached the node: nothing was sent
                Forget(endpoint);
            }
            catch (Exception error) when (error is HttpRequestException or IOException
                || (error is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                sent = true; // it may have reached the node
                lastProblem = $"{endpoint}: {(error is OperationCanceledException ? "no answer in time" : error.Message)}";
                Forget(endpoint);
            }
        }
        cancellationToken.ThrowIfCancellationRequested();
        if (write && sent)
        {
            throw new OutcomeUnknownException($"the write may or may not have been applied ({lastProblem}); every attempt carried the same session sequence, so it was applied at most once. Read to find out: calling again is a new write");
        }
        throw new ClusterUnavailableException($"no node could serve the request ({lastProblem})");
    }

    /// <summary>
    /// What comes before an attempt of a command or a lease request: the backoff after the first, and before the first a
    /// lookup of a leader a follower named that this client cannot address. False when the operation's time ran out.
    /// </summary>
    private Task<bool> BeforeAttemptAsync(int attempt, OperationDeadline deadline, CancellationToken caller) =>
        attempt > 0 ? WaitBeforeRetryAsync(attempt, deadline.Overall, caller) : LookUpUnmappedLeaderAsync(deadline, caller);

    /// <summary>
    /// A follower answered for a leader this client cannot address: ask every endpoint who it is, once per leader, so that
    /// the next requests go to the leader instead of through the follower. False when the operation's own time ran out.
    /// </summary>
    private async Task<bool> LookUpUnmappedLeaderAsync(OperationDeadline deadline, CancellationToken caller)
    {
        if (TakeUnmappedLeader() is null)
        {
            return true;
        }
        try
        {
            await ClusterStatusAsync(deadline.Overall).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (!caller.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>Every endpoint's status (those that do not answer say why).</summary>
    public Task<IReadOnlyList<EndpointStatus>> ClusterStatusAsync(CancellationToken cancellationToken = default) =>
        AskEveryEndpointAsync(
            async (endpoint, token) =>
            {
                using var response = await _http.GetAsync(new Uri(endpoint, "/status"), token).ConfigureAwait(false);
                if (!response.IsSuccessStatusCode)
                {
                    return new EndpointStatus(endpoint, null, $"{(int)response.StatusCode} {response.ReasonPhrase}");
                }
                var status = await ReadAsync(response, ContractsJson.Default.StatusResponse, token).ConfigureAwait(false);
                lock (_gate)
                {
                    _nodes[status.NodeId] = endpoint;
                    if (status.Role == "Leader")
                    {
                        _leader = endpoint;
                    }
                }
                return new EndpointStatus(endpoint, status, null);
            },
            (endpoint, why) => new EndpointStatus(endpoint, null, why),
            cancellationToken);

    // ---------------------------------------------------------------- membership and leadership (/cluster)

    /// <summary>The members as the first endpoint that answers sees them.</summary>
    public Task<MembersResponse> MembersAsync(CancellationToken cancellationToken = default) =>
        AdminAsync(HttpMethod.Get, "/cluster/members", null, ContractsJson.Default.MembersResponse, change: false, cancellationToken);

    /// <summary>Adds a node: a learner, or (<paramref name="learner"/> false) a voter once it has caught up. Start it with --join.</summary>
    public Task<MembersResponse> AddMemberAsync(string id, Uri peerUrl, Uri? clientUrl, bool learner, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(peerUrl);
        var body = JsonSerializer.SerializeToUtf8Bytes(new AddMemberRequest(id, peerUrl.ToString(), clientUrl?.ToString(), learner), ContractsJson.Default.AddMemberRequest);
        return ChangeMembersAsync(HttpMethod.Post, "/cluster/members", body,
            members => members.Members.Any(m => m.Id == id && (learner || m.Role == "voter")), cancellationToken);
    }

    public Task<MembersResponse> PromoteMemberAsync(string id, CancellationToken cancellationToken = default) =>
        ChangeMembersAsync(HttpMethod.Post, $"/cluster/members/{Uri.EscapeDataString(id)}/promote", null,
            members => members.Members.Any(m => m.Id == id && m.Role == "voter"), cancellationToken);

    public Task<MembersResponse> RemoveMemberAsync(string id, CancellationToken cancellationToken = default) =>
        ChangeMembersAsync(HttpMethod.Delete, $"/cluster/members/{Uri.EscapeDataString(id)}", null,
            members => members.Members.All(m => m.Id != id), cancellationToken);

    /// <summary>
    /// A membership change whose outcome the cluster could not tell (the leader died while it was forwarded, say) is looked
    /// up in the member list: done if <paramref name="done"/> holds there, else sent again after a backoff (at most
    /// <see cref="RaftKvClientOptions.MaxAttempts"/> times in all: long enough for the cluster to elect a new leader).
    /// A change is idempotent in effect, so sending it again after it was made can only be refused as already made.
    /// </summary>
    private async Task<MembersResponse> ChangeMembersAsync(HttpMethod method, string path, byte[]? body, Func<MembersResponse, bool> done,
        CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await AdminAsync(method, path, body, ContractsJson.Default.MembersResponse, change: true, cancellationToken).ConfigureAwait(false);
            }
            catch (OutcomeUnknownException) when (attempt < _options.MaxAttempts)
            {
                await Task.Delay(Backoff(attempt + 2), cancellationToken).ConfigureAwait(false);
                var members = await MembersAsync(cancellationToken).ConfigureAwait(false);
                if (done(members) && !members.ChangeInFlight)
                {
                    return members;
                }
            }
        }
    }

    /// <summary>Hands leadership to <paramref name="to"/>, or (null) to the most caught-up voter; answers with the new leader.</summary>
    public Task<LeaderResponse> TransferLeaderAsync(string? to, CancellationToken cancellationToken = default)
    {
        var body = JsonSerializer.SerializeToUtf8Bytes(new TransferLeaderRequest(to), ContractsJson.Default.TransferLeaderRequest);
        return AdminAsync(HttpMethod.Post, "/cluster/leader", body, ContractsJson.Default.LeaderResponse, change: true, cancellationToken);
    }

    /// <summary>
    /// Streams a backup (GET /cluster/snapshot) into <paramref name="destination"/>: from the leader, after a ReadIndex round
    /// (it holds every write acknowledged before the call), or with <paramref name="stale"/> from the first endpoint that
    /// answers. Returns the endpoint it came from. The caller verifies the file (its checksum) before trusting it.
    /// </summary>
    public async Task<Uri> SaveSnapshotAsync(Stream destination, bool stale, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(destination);
        using var overall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        overall.CancelAfter(_options.Timeout);
        string? lastProblem = null;
        for (var attempt = 0; attempt < _options.MaxAttempts; attempt++)
        {
            if (attempt > 0 && !await WaitBeforeRetryAsync(attempt, overall.Token, cancellationToken).ConfigureAwait(false))
            {
                break;
            }
            if (!stale)
            {
                await ClusterStatusAsync(overall.Token).ConfigureAwait(false); // learns which endpoint leads
            }
            var endpoint = PickEndpoint(stale ? attempt : 0);
            try
            {
                using var response = await _http.GetAsync(new Uri(endpoint, "/cluster/snapshot" + (stale ? "?consistency=stale" : "")),
                    HttpCompletionOption.ResponseHeadersRead, overall.Token).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    await response.Content.CopyToAsync(destination, overall.Token).ConfigureAwait(false);
                    return endpoint;
                }
                var problem = await ReadProblemAsync(response, overall.Token).ConfigureAwait(false);
                lastProblem = problem?.Detail ?? $"{endpoint} answered {(int)response.StatusCode}";
                if ((int)response.StatusCode is 401 or 403)
                {
                    throw new InvalidRequestException(lastProblem, (int)response.StatusCode, problem?.Field);
                }
                Forget(endpoint);
            }
            catch (HttpRequestException error)
            {
                lastProblem = $"{endpoint}: {error.Message}";
                Forget(endpoint);
            }
        }
        throw new ClusterUnavailableException($"no node gave a snapshot ({lastProblem})");
    }

    /// <summary>
    /// One /cluster request, tried on each endpoint in turn while nodes are down or have no leader (503). A change is never
    /// resent once a node may have received it: its outcome is then unknown (the caller checks the member list). A write
    /// refused because it names a lease that does not exist (404 with the command's answer) becomes
    /// <paramref name="leaseNotFound"/>'s answer, if given. A write that carries this client's <paramref name="session"/>
    /// (clientId and seq) is sent again, as a write is, when a node could not tell its outcome (504, a broken connection):
    /// the cluster applies it at most once; if no attempt answers, its outcome is unknown.
    /// </summary>
    private async Task<T> AdminAsync<T>(HttpMethod method, string path, byte[]? body, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type,
        bool change, CancellationToken cancellationToken, bool session = false, Func<KvResponse, T>? leaseNotFound = null)
    {
        using var deadline = new OperationDeadline(_options.Timeout, cancellationToken);
        string? lastProblem = null;
        var mayHaveApplied = false;
        for (var attempt = 0; attempt < _options.MaxAttempts && !deadline.IsOver; attempt++)
        {
            if (attempt > 0 && !await WaitBeforeRetryAsync(attempt, deadline.Overall, cancellationToken).ConfigureAwait(false))
            {
                break;
            }
            var endpoint = PickEndpoint(attempt);
            // A change may wait for two commits and a learner to catch up: it gets the whole timeout.
            using var attemptTimeout = deadline.StartAttempt(change ? _options.Timeout : _options.AttemptTimeout);
            try
            {
                using var request = NewRequest(method, new Uri(endpoint, path));
                if (body is not null)
                {
                    request.Content = new ByteArrayContent(body);
                    request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                }
                using var response = await _http.SendAsync(request, attemptTimeout.Token).ConfigureAwait(false);
                var status = (int)response.StatusCode;
                if (status is 200 or 201)
                {
                    return await ReadAsync(response, type, attemptTimeout.Token).ConfigureAwait(false);
                }
                if (status == 404 && leaseNotFound is not null && IsAnswer(response)
                    && await ReadAsync(response, ContractsJson.Default.KvResponse, attemptTimeout.Token).ConfigureAwait(false) is { LeaseNotFound: true } refused)
                {
                    return leaseNotFound(refused);
                }
                var problem = await ReadProblemAsync(response, attemptTimeout.Token).ConfigureAwait(false);
                var detail = problem?.Detail ?? $"{endpoint} answered {status} {response.ReasonPhrase}";
                switch (status)
                {
                    case 400 or 401 or 403 or 404 or 413:
                        throw new InvalidRequestException(detail, status, problem?.Field);
                    case 409:
                        throw new ConflictException(detail);
                    case 503:
                        lastProblem = detail; // nothing was changed: another node may serve it
                        break;
                    case 504 when session:
                        lastProblem = detail;
                        mayHaveApplied = true;
                        Forget(endpoint);
                        break;
                    case 504:
                        throw new OutcomeUnknownException(detail);
                    default:
                        lastProblem = detail;
                        break;
                }
            }
            catch (HttpRequestException error) when (error.HttpRequestError is HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError)
            {
                lastProblem = $"{endpoint}: {error.Message}";
                Forget(endpoint);
            }
            catch (Exception error) when (change && (error is HttpRequestException or IOException
                || (error is OperationCanceledException && !cancellationToken.IsCancellationRequested)))
            {
                throw new OutcomeUnknownException($"{endpoint}: {(error is OperationCanceledException ? "no answer in time" : error.Message)}; check the member list");
            }
            catch (Exception error) when (error is HttpRequestException or IOException
                || (error is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                lastProblem = $"{endpoint}: {(error is OperationCanceledException ? "no answer in time" : error.Message)}";
                mayHaveApplied |= session;
                Forget(endpoint);
            }
        }
        cancellationToken.ThrowIfCancellationRequested();
        if (mayHaveApplied)
        {
            throw new OutcomeUnknownException($"the write may or may not have been applied ({lastProblem}); every attempt carried the same session sequence, so it was applied at most once. Read to find out: calling again is a new write");
        }
        throw new ClusterUnavailableException($"no node could serve the request ({lastProblem})");
    }

    /// <summary>Liveness and readiness of every endpoint.</summary>
    public Task<IReadOnlyList<HealthReport>> HealthAsync(CancellationToken cancellationToken = default) =>
        AskEveryEndpointAsync(
            async (endpoint, token) =>
            {
                using var live = await _http.GetAsync(new Uri(endpoint, "/health"), token).ConfigureAwait(false);
                using var ready = await _http.GetAsync(new Uri(endpoint, "/health/ready"), token).ConfigureAwait(false);
                var body = await ready.Content.ReadFromJsonAsync(ContractsJson.Default.HealthResponse, token).ConfigureAwait(false);
                return new HealthReport(endpoint, live.IsSuccessStatusCode, ready.IsSuccessStatusCode, body?.Detail ?? body?.Status ?? "");
            },
            (endpoint, why) => new HealthReport(endpoint, false, false, why),
            cancellationToken);

    /// <summary>Asks every endpoint at once, each within one attempt's timeout; one that cannot answer says why.</summary>
    private async Task<IReadOnlyList<T>> AskEveryEndpointAsync<T>(
        Func<Uri, CancellationToken, Task<T>> ask, Func<Uri, string, T> unanswered, CancellationToken cancellationToken)
    {
        var tasks = _options.Endpoints.Select(async endpoint =>
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_options.AttemptTimeout);
            try
            {
                return await ask(endpoint, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception error) when (error is HttpRequestException or IOException or JsonException
                || (error is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                return unanswered(endpoint, error is OperationCanceledException ? "no answer in time" : error.Message);
            }
        });
        return await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    public void Dispose()
    {
        _http.Dispose();
        _writes.Dispose();
    }

    private Uri PickEndpoint(int attempt)
    {
        lock (_gate)
        {
            if (_leader is not null && attempt == 0)
            {
                return _leader;
            }
            var endpoint = _options.Endpoints[_next % _options.Endpoints.Count];
            _next++;
            return endpoint;
        }
    }

    /// <summary>The answer names the leader: remember where it is, if we know its endpoint, else remember what worked.</summary>
    private void Learn(Uri endpoint, HttpResponseMessage response)
    {
        if (!response.Headers.TryGetValues("X-Raft-Leader", out var values) || response.StatusCode is HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout)
        {
            return;
        }
        var leader = values.FirstOrDefault();
        lock (_gate)
        {
            if (leader is not null && _nodes.TryGetValue(leader, out var known))
            {
                _leader = known;
                return;
            }
            _leader = endpoint; // it answered for the leader: keep using it until we know better
            if (leader is not null && _lookedUp.Count < 64 && _lookedUp.Add(leader))
            {
                _unmappedLeader = leader;
            }
        }
    }

    private string? TakeUnmappedLeader()
    {
        lock (_gate)
        {
            var leader = _unmappedLeader;
            _unmappedLeader = null;
            return leader;
        }
    }

    private void Forget(Uri endpoint)
    {
        lock (_gate)
        {
            if (_leader == endpoint)
            {
                _leader = null;
            }
        }
    }

    /// <summary>Waits before retry <paramref name="attempt"/>; false when the operation's own time ran out (not the caller's).</summary>
    private async Task<bool> WaitBeforeRetryAsync(int attempt, CancellationToken overall, CancellationToken caller)
    {
        try
        {
            await Task.Delay(Backoff(attempt), overall).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException) when (!caller.IsCancellationRequested)
        {
            return false;
        }
    }

    private TimeSpan Backoff(int attempt)
    {
        var delay = Math.Min(_options.RetryMaxDelay.TotalMilliseconds, _options.RetryBaseDelay.TotalMilliseconds * Math.Pow(2, attempt - 1));
        return TimeSpan.FromMilliseconds((delay / 2) + Random.Shared.NextDouble() * (delay / 2));
    }

    private static async Task<T> ReadAsync<T>(HttpResponseMessage response, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        var value = await response.Content.ReadFromJsonAsync(type, cancellationToken).ConfigureAwait(false);
        return value ?? throw new JsonException("an empty answer");
    }

    /// <summary>An answer in the command's shape (application/json), not a problem (application/problem+json) or a stranger's page.</summary>
    private static bool IsAnswer(HttpResponseMessage response) => response.Content.Headers.ContentType?.MediaType == "application/json";

    private static async Task<ProblemResponse?> ReadProblemAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            return response.Content.Headers.ContentLength == 0
                ? null
                : await response.Content.ReadFromJsonAsync(ContractsJson.Default.ProblemResponse, cancellationToken).ConfigureAwait(false);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public override string ToString() => string.Format(CultureInfo.InvariantCulture, "RaftKvClient {0} → {1}", ClientId, string.Join(", ", _options.Endpoints));
}
