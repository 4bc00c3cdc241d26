using RaftKv.Contracts;
using RaftKv.Hosting;
using RaftKv.RaftCore;
using RaftKv.StateMachine;

namespace RaftKv.Server;

/// <summary>
/// Leases, as etcd has them: POST /leases {"ttl":10} grants one (its id is the index of the entry that granted it);
/// POST /leases/{id}/keepalive restarts its countdown on the leader; DELETE /leases/{id} revokes it; GET /leases/{id}
/// tells its time to live, the time left and its keys. Keys written with a lease (PUT /kv/k?lease=id, "lease" in
/// /command and /txn) are deleted when it is revoked or expires. Grants and revokes are log entries; keepalives and the
/// time left are the leader's (<see cref="LeaseClock"/>), reached through <see cref="IRaftNode.AskLeaderAsync"/>. Every
/// route but GET needs the write role.
/// </summary>
internal static class LeaseApi
{
    /// <summary>The largest body POST /leases reads: a TTL and a session.</summary>
    private const long GrantBodyBytes = 4096;

    public static void Map(RouteGroupBuilder kv, IRaftNode node, KvOptions options, RaftAccess access)
    {
        Func<HttpContext, Task<IResult>> grant = http => GrantAsync(http, node, options, access);
        kv.MapPost("/leases", grant);
        kv.MapPost("/leases/{id}/keepalive", (HttpContext http, string id) => KeepAliveAsync(http, id, node, access));
        kv.MapDelete("/leases/{id}", (HttpContext http, string id) => RevokeAsync(http, id, node, access));
        kv.MapGet("/leases/{id}", (HttpContext http, string id) => InfoAsync(http, id, node));
    }

    private static async Task<IResult> GrantAsync(HttpContext http, IRaftNode node, KvOptions options, RaftAccess access)
    {
        if (access.Check(http, RaftRole.Write) is { } denied)
        {
            return KvApi.Problem(denied);
        }
        if (!KvApi.IsJson(http.Request.ContentType))
        {
            return KvApi.Problem(KvRequests.Problem(400, "Content-Type", $"POST /leases takes application/json, not '{http.Request.ContentType ?? "nothing"}'"));
        }
        var body = await KvApi.ReadBodyAsync(http, GrantBodyBytes).ConfigureAwait(false);
        if (body is null)
        {
            return KvApi.TooLarge(GrantBodyBytes);
        }
        var (request, malformed) = KvApi.Parse(body, ContractsJson.Strict.LeaseGrantRequest);
        if (malformed is not null)
        {
            return KvApi.Problem(malformed);
        }
        if (request!.Ttl is not { } ttl || ttl < 1 || ttl > options.MaxLeaseTtlSeconds)
        {
            return KvApi.Problem(KvRequests.Problem(400, "ttl", $"{(request.Ttl is null ? "missing" : $"{request.Ttl}")}: seconds from 1 to {options.MaxLeaseTtlSeconds}"));
        }
        if (KvRequests.SessionProblem(request.ClientId, request.Seq) is { } session)
        {
            return KvApi.Problem(session);
        }
        var answer = await node.ProposeAsync(KvLeaseCommand.Grant(ttl, request.ClientId, request.Seq ?? 0).Encode(), http.RequestAborted).ConfigureAwait(false);
        return LeaseAnswer(http, answer, "", revoke: false);
    }

    private static async Task<IResult> RevokeAsync(HttpContext http, string idText, IRaftNode node, RaftAccess access)
    {
        if (access.Check(http, RaftRole.Write) is { } denied)
        {
            return KvApi.Problem(denied);
        }
        if (ParseId(idText) is not { } id)
        {
            return BadId(idText);
        }
        var answer = await node.ProposeAsync(KvLeaseCommand.Revoke(id).Encode(), http.RequestAborted).ConfigureAwait(false);
        return LeaseAnswer(http, answer, idText, revoke: true);
    }

    /// <summary>
    /// Restarts the lease's countdown on the leader. A lease the leader does not hold is looked for once more after a
    /// linearizable read: a leader elected a moment ago may not yet have applied the grant of a lease its client holds.
    /// </summary>
    private static async Task<IResult> KeepAliveAsync(HttpContext http, string idText, IRaftNode node, RaftAccess access)
    {
        if (access.Check(http, RaftRole.Write) is { } denied)
        {
            return KvApi.Problem(denied);
        }
        if (ParseId(idText) is not { } id)
        {
            return BadId(idText);
        }
        var (answer, lease) = await AskAsync(http, node, LeaseAsk.KeepAlive, id).ConfigureAwait(false);
        if (lease is null)
        {
            return KvApi.Answer(http, answer, missingIs404: false);
        }
        return lease.Found
            ? TypedResults.Json(new LeaseResponse(id, lease.TtlSeconds, null, answer.Term.Value, KvApi.NameLeader(http, answer)), ContractsJson.Default.LeaseResponse)
            : NotFound(idText);
    }

    private static async Task<IResult> InfoAsync(HttpContext http, string idText, IRaftNode node)
    {
        if (ParseId(idText) is not { } id)
        {
            return BadId(idText);
        }
        var (answer, lease) = await AskAsync(http, node, LeaseAsk.TimeToLive, id).ConfigureAwait(false);
        if (lease is null)
        {
            return KvApi.Answer(http, answer, missingIs404: false);
        }
        return lease.Found
            ? TypedResults.Json(new LeaseInfoResponse(id, lease.TtlSeconds, lease.LeftMs / 1000.0, lease.KeyCount, lease.Keys, answer.Term.Value,
                KvApi.NameLeader(http, answer)), ContractsJson.Default.LeaseInfoResponse)
            : NotFound(idText);
    }

    /// <summary>Asks the leader about a lease; a "not found" is asked again once after the leader has applied all it committed.</summary>
    private static async Task<(NodeAnswer Answer, LeaseTimeToLive? Lease)> AskAsync(HttpContext http, IRaftNode node, byte operation, ulong id)
    {
        var request = LeaseAsk.Encode(operation, id);
        var answer = await node.AskLeaderAsync(request, http.RequestAborted).ConfigureAwait(false);
        var lease = Read(answer);
        if (lease is { Found: false })
        {
            // A linearizable read returns once this node applied all the leader had committed when the read began.
            var read = await node.ReadAsync(new KvCommand(KvOperation.Get, "").Encode(), ReadConsistency.Linearizable, http.RequestAborted).ConfigureAwait(false);
            if (read.Status == AnswerStatus.Ok)
            {
                answer = await node.AskLeaderAsync(request, http.RequestAborted).ConfigureAwait(false);
                lease = Read(answer);
            }
        }
        return (answer, lease);
    }

    private static LeaseTimeToLive? Read(NodeAnswer answer)
    {
        try
        {
            return answer.Status == AnswerStatus.Ok ? LeaseTimeToLive.Decode(answer.Result.Span) : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }

    /// <summary>A grant's or revoke's answer: the lease, 404 if there is no such lease, 409 at the lease limit, or the node's refusal.</summary>
    private static IResult LeaseAnswer(HttpContext http, NodeAnswer answer, string idText, bool revoke)
    {
        if (answer.Status != AnswerStatus.Ok || answer.Result.IsEmpty || answer.Result.Span[0] != KvLeaseCommand.Format)
        {
            return KvApi.Answer(http, answer, missingIs404: false); // a stale session sequence, no leader, outcome unknown, …
        }
        KvLeaseResult result;
        try
        {
            result = KvLeaseResult.Decode(answer.Result.Span);
        }
        catch (FormatException error)
        {
            return KvApi.Problem(new ProblemResponse("urn:raftkv:problem:outcome-unknown", "Outcome unknown", 504,
                $"the answer could not be read ({error.Message}); the lease may or may not be changed"));
        }
        return result.Error switch
        {
            KvError.None => TypedResults.Json(new LeaseResponse(result.Id, result.TtlSeconds, result.Index, answer.Term.Value, KvApi.NameLeader(http, answer),
                revoke ? result.Deleted : null), ContractsJson.Default.LeaseResponse),
            KvError.TooManyLeases => KvApi.Problem(new ProblemResponse("urn:raftkv:problem:lease-limit", "Too many leases", 409,
                "the store holds as many leases as it keeps (RaftKv:Kv:MaxLeases); revoke some or let them expire", "ttl")),
            _ => NotFound(idText),
        };
    }

    private static ulong? ParseId(string text) => ulong.TryParse(text, out var id) && id > 0 ? id : null;

    private static IResult BadId(string text) => KvApi.Problem(KvRequests.Problem(400, "id", $"'{text}' is not a lease id (a whole number from 1)"));

    private static IResult NotFound(string idText) => KvApi.Problem(new ProblemResponse("urn:raftkv:problem:lease-not-found", "Lease not found", 404,
        $"id: no lease {idText}: never granted, revoked, or expired", "id"));
}
