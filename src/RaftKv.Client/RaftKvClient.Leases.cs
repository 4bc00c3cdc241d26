using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using RaftKv.Contracts;

namespace RaftKv.Client;

/// <summary>
/// Leases (POST /leases, /leases/{id}/keepalive, DELETE and GET /leases/{id}). A lease that does not exist (never granted,
/// revoked, or expired) is a null answer, as a missing key is an answer (Found false) and not an exception; a write that
/// names one says <see cref="KvResponse.LeaseNotFound"/>. Any node serves these requests (a follower asks the leader).
/// </summary>
public sealed partial class RaftKvClient
{
    private const string LeaseNotFoundProblem = "urn:raftkv:problem:lease-not-found";

    /// <summary>
    /// Grants a lease of <paramref name="ttlSeconds"/>. Keys written with its id go when it is revoked or expires, which it
    /// does a TTL after it was granted or last kept alive. The grant carries this client's session, so the retries made
    /// here grant one lease. At the cluster's lease limit: <see cref="ConflictException"/>.
    /// </summary>
    public async Task<LeaseResponse> GrantLeaseAsync(long ttlSeconds, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ttlSeconds, 1);
        await _writes.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Every attempt of this grant carries the same sequence number: retries grant at most one lease.
            var body = JsonSerializer.SerializeToUtf8Bytes(new LeaseGrantRequest { Ttl = ttlSeconds, ClientId = ClientId, Seq = ++_sequence },
                ContractsJson.Default.LeaseGrantRequest);
            return (await LeaseRequestAsync(HttpMethod.Post, "/leases", body, ContractsJson.Default.LeaseResponse, LeaseCall.Grant, null, cancellationToken)
                .ConfigureAwait(false))!;
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>
    /// Restarts the lease's countdown at its full TTL (on the leader); the answer has the TTL. Null: the lease is gone.
    /// Safe to repeat, so it is retried on other endpoints while nodes are down or have no leader.
    /// </summary>
    public Task<LeaseResponse?> KeepAliveLeaseAsync(ulong id, CancellationToken cancellationToken = default) =>
        KeepAliveCoreAsync(id, null, cancellationToken);

    /// <summary>A keepalive whose attempts each get <paramref name="attemptTimeout"/> (a keeper of a short lease cannot wait 7 s on one node).</summary>
    internal Task<LeaseResponse?> KeepAliveCoreAsync(ulong id, TimeSpan? attemptTimeout, CancellationToken cancellationToken) =>
        LeaseRequestAsync(HttpMethod.Post, LeasePath(id) + "/keepalive", null, ContractsJson.Default.LeaseResponse, LeaseCall.Repeatable, attemptTimeout,
            cancellationToken);

    /// <summary>
    /// Revokes the lease and deletes its keys; the answer's Deleted says how many. Null: no such lease. It is not resent once a
    /// node may have received it: if no answer came, <see cref="OutcomeUnknownException"/> (revoking again is safe; a null
    /// answer then means it is gone).
    /// </summary>
    public Task<LeaseResponse?> RevokeLeaseAsync(ulong id, CancellationToken cancellationToken = default) =>
        LeaseRequestAsync(HttpMethod.Delete, LeasePath(id), null, ContractsJson.Default.LeaseResponse, LeaseCall.Once, null, cancellationToken);

    /// <summary>The lease's TTL, the seconds left by the leader's clock, and its keys (the first 1,000). Null: the lease is gone.</summary>
    public Task<LeaseInfoResponse?> GetLeaseAsync(ulong id, CancellationToken cancellationToken = default) =>
        LeaseRequestAsync(HttpMethod.Get, LeasePath(id), null, ContractsJson.Default.LeaseInfoResponse, LeaseCall.Repeatable, null, cancellationToken);

    /// <summary>
    /// Grants a lease of <paramref name="ttlSeconds"/> and keeps it alive in the background until the keeper is disposed
    /// (which revokes it): <c>await using var keeper = await client.KeepLeaseAsync(10);</c>. Dispose the keeper before this client.
    /// </summary>
    public async Task<LeaseKeeper> KeepLeaseAsync(long ttlSeconds, LeaseKeeperOptions? options = null, CancellationToken cancellationToken = default)
    {
        var asked = TimeProvider.System.GetTimestamp(); // the countdown cannot have started before the grant was asked for
        var lease = await GrantLeaseAsync(ttlSeconds, cancellationToken).ConfigureAwait(false);
        return new LeaseKeeper(this, lease.Id, lease.Ttl, asked, options ?? new LeaseKeeperOptions());
    }

    /// <summary>
    /// Keeps an existing lease alive in the background: one keepalive now (it learns the TTL and restarts the countdown),
    /// then as <see cref="KeepLeaseAsync"/>. Null: the lease is gone. <see cref="LeaseKeeperOptions.KeptAlive"/> hears of
    /// this first keepalive too.
    /// </summary>
    public async Task<LeaseKeeper?> KeepExistingLeaseAsync(ulong id, LeaseKeeperOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new LeaseKeeperOptions();
        var asked = TimeProvider.System.GetTimestamp();
        var first = await KeepAliveLeaseAsync(id, cancellationToken).ConfigureAwait(false);
        if (first is null)
        {
            return null;
        }
        options.KeptAlive?.Invoke(first);
        return new LeaseKeeper(this, id, first.Ttl, asked, options);
    }

    private static string LeasePath(ulong id)
    {
        ArgumentOutOfRangeException.ThrowIfZero(id);
        return "/leases/" + id.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>What may be done with a lease request that may have reached a node without an answer.</summary>
    private enum LeaseCall
    {
        /// <summary>A grant: resent with the same session, so applied once; unanswered after every attempt, its outcome is unknown.</summary>
        Grant,

        /// <summary>A keepalive or a read: resent freely.</summary>
        Repeatable,

        /// <summary>A revoke: never resent once a node may have received it (it carries no session).</summary>
        Once,
    }

    /// <summary>
    /// One lease request, on the leader if known, else on each endpoint in turn while nodes are down, have no leader (503)
    /// or (for <see cref="LeaseCall.Grant"/> and <see cref="LeaseCall.Repeatable"/>) give no answer in time. Null: the
    /// lease does not exist (404 lease-not-found).
    /// </summary>
    private async Task<T?> LeaseRequestAsync<T>(HttpMethod method, string path, byte[]? body, JsonTypeInfo<T> type, LeaseCall call, TimeSpan? attemptTimeout,
        CancellationToken cancellationToken)
        where T : class
    {
        using var deadline = new OperationDeadline(_options.Timeout, cancellationToken);
        var sent = false; // whether some attempt may have reached a node
        string? lastProblem = null;
        for (var attempt = 0; attempt < _options.MaxAttempts && !deadline.IsOver; attempt++)
        {
            if (!await BeforeAttemptAsync(attempt, deadline, cancellationToken).ConfigureAwait(false))
            {
                break;
            }
            var endpoint = PickEndpoint(attempt);
            using var attemptTimeoutSource = deadline.StartAttempt(attemptTimeout ?? _options.AttemptTimeout);
            try
            {
                using var request = NewRequest(method, new Uri(endpoint, path));
                if (body is not null)
                {
                    request.Content = new ByteArrayContent(body);
                    request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
                }
                using var response = await _http.SendAsync(request, attemptTimeoutSource.Token).ConfigureAwait(false);
                sent = true;
                Learn(endpoint, response);
                var status = (int)response.StatusCode;
                if (status == 200)
                {
                    return await ReadAsync(response, type, attemptTimeoutSource.Token).ConfigureAwait(false);
                }
                var problem = await ReadProblemAsync(response, attemptTimeoutSource.Token).ConfigureAwait(false);
                var detail = problem?.Detail ?? $"{endpoint} answered {status} {response.ReasonPhrase}";
                switch (status)
                {
                    case 404 when call != LeaseCall.Grant && problem?.Type == LeaseNotFoundProblem:
                        return null;
                    case 400 or 401 or 403 or 404 or 413:
                        throw new InvalidRequestException(detail, status, problem?.Field);
                    case 409:
                        throw new ConflictException(detail); // the lease limit; or another writer uses this client's id
                    case 504 when call == LeaseCall.Once:
                        throw new OutcomeUnknownException(detail + "; revoking again is safe");
                    default:
                        lastProblem = detail; // 503: nothing was changed; 504: resent (a grant in its session)
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
                if (call == LeaseCall.Once)
                {
                    throw new OutcomeUnknownException($"the lease may or may not be revoked ({lastProblem}); revoking again is safe");
                }
                Forget(endpoint);
            }
        }
        cancellationToken.ThrowIfCancellationRequested();
        if (call == LeaseCall.Grant && sent)
        {
            throw new OutcomeUnknownException($"the lease may or may not have been granted ({lastProblem})");
        }
        throw new ClusterUnavailableException($"no node could serve the request ({lastProblem})");
    }
}
