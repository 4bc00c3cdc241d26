using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using RaftKv.Contracts;
using RaftKv.RaftCore;
using ClusterResult = Microsoft.AspNetCore.Http.HttpResults.Results<
    Microsoft.AspNetCore.Http.HttpResults.JsonHttpResult<RaftKv.Contracts.MembersResponse>,
    Microsoft.AspNetCore.Http.HttpResults.JsonHttpResult<RaftKv.Contracts.ProblemResponse>>;
using LeaderResult = Microsoft.AspNetCore.Http.HttpResults.Results<
    Microsoft.AspNetCore.Http.HttpResults.JsonHttpResult<RaftKv.Contracts.LeaderResponse>,
    Microsoft.AspNetCore.Http.HttpResults.JsonHttpResult<RaftKv.Contracts.ProblemResponse>>;

namespace RaftKv.Hosting;

/// <summary>
/// The membership API on the client port (like etcd's member API): list, add (a learner, or a voter once caught up),
/// promote, remove, and hand leadership over. Any node takes a change and forwards it to the leader; one change at a time
/// (409 while another is in flight), 400 for a node that is not (or already is) a member.
/// </summary>
internal static class ClusterEndpoints
{
    /// <summary>How long POST /cluster/members with learner=false waits for the new learner to catch up before it gives up promoting it.</summary>
    public static readonly TimeSpan PromoteWithin = TimeSpan.FromSeconds(30);

    public static void Map(RouteGroupBuilder client, RaftNodeHost node, long maxBodyBytes)
    {
        // Route handlers, not RequestDelegates: typed so that their results are written.
        Func<HttpContext, Task<ClusterResult>> list = http => ListAsync(http, node);
        Func<HttpContext, Task<ClusterResult>> add = http => AddAsync(http, node, maxBodyBytes);
        Func<HttpContext, Task<LeaderResult>> transfer = http => TransferAsync(http, node, maxBodyBytes);
        client.MapGet("/cluster/members", list).RequireRaftRole(RaftRole.Read);
        client.MapPost("/cluster/members", add).RequireRaftRole(RaftRole.Admin);
        client.MapPost("/cluster/members/{id}/promote", (HttpContext http, string id) => ChangeAsync(http, node, ConfChangeKind.Promote, id))
            .RequireRaftRole(RaftRole.Admin);
        client.MapDelete("/cluster/members/{id}", (HttpContext http, string id) => ChangeAsync(http, node, ConfChangeKind.Remove, id))
            .RequireRaftRole(RaftRole.Admin);
        client.MapPost("/cluster/leader", transfer).RequireRaftRole(RaftRole.Admin);
        // Not a route handler (it writes the response itself): the role is checked inside.
        client.MapGet("/cluster/snapshot", (HttpContext http) => SnapshotAsync(http, node));
    }

    private static async Task<ClusterResult> ListAsync(HttpContext http, RaftNodeHost node)
    {
        var status = await node.GetStatusAsync(http.RequestAborted).ConfigureAwait(false);
        var raft = status.Raft;
        return TypedResults.Json(Describe(node, raft.Config, raft.Leader, !raft.ConfigCommitted, raft.Peers.ToDictionary(p => p.Id, p => p.Match)),
            ContractsJson.Default.MembersResponse);
    }

    private static async Task<ClusterResult> AddAsync(HttpContext http, RaftNodeHost node, long maxBodyBytes)
    {
        var (request, problem) = await ReadAsync(http, maxBodyBytes, ContractsJson.Strict.AddMemberRequest).ConfigureAwait(false);
        if (problem is not null)
        {
            return problem;
        }
        if (request is null)
        {
            return Invalid("body", "a member to add: {\"id\":\"n4\",\"peerUrl\":\"http://host:9084\",\"clientUrl\":\"http://host:8084\",\"learner\":true}");
        }
        if (!NodeId.TryParse(request.Id ?? "", out var id))
        {
            return Invalid("id", $"'{request.Id}' is not a node id (n4 or 4)");
        }
        if (!IsHttpUrl(request.PeerUrl, out var peerUrl))
        {
            return Invalid("peerUrl", $"'{request.PeerUrl}' is not an absolute http:// URL with a port (where the new node listens for peers)");
        }
        Uri? clientUrl = null;
        if (request.ClientUrl is not null && !IsHttpUrl(request.ClientUrl, out clientUrl))
        {
            return Invalid("clientUrl", $"'{request.ClientUrl}' is not an absolute http:// URL with a port");
        }
        var added = await node.ChangeMembershipAsync(new ConfChange(ConfChangeKind.AddLearner, id, MemberAddress.Format(peerUrl!, clientUrl)), http.RequestAborted)
            .ConfigureAwait(false);
        if (added.Status != AnswerStatus.Ok || request.Learner != false)
        {
            return Result(http, node, added, created: true);
        }
        // A voter: it joins as a learner, and is promoted once it has caught up.
        var deadline = DateTime.UtcNow + PromoteWithin;
        while (true)
        {
            var promoted = await node.ChangeMembershipAsync(new ConfChange(ConfChangeKind.Promote, id), http.RequestAborted).ConfigureAwait(false);
            if (promoted.Status != AnswerStatus.Conflict || DateTime.UtcNow >= deadline)
            {
                return promoted.Status == AnswerStatus.Conflict
                    ? Problem(409, "urn:raftkv:problem:not-caught-up", "Added as a learner, not promoted",
                        $"{id} was added as a learner but did not catch up within {PromoteWithin.TotalSeconds:0} s ({promoted.Reason}); promote it later: POST /cluster/members/{id}/promote", "learner")
                    : Result(http, node, promoted, created: true);
            }
            await Task.Delay(200, http.RequestAborted).ConfigureAwait(false);
        }
    }

    private static async Task<ClusterResult> ChangeAsync(HttpContext http, RaftNodeHost node, ConfChangeKind kind, string text)
    {
        if (!NodeId.TryParse(text, out var id))
        {
            return Invalid("id", $"'{text}' is not a node id (n4 or 4)");
        }
        var answer = await node.ChangeMembershipAsync(new ConfChange(kind, id), http.RequestAborted).ConfigureAwait(false);
        return Result(http, node, answer, created: false);
    }

    private static async Task<LeaderResult> TransferAsync(HttpContext http, RaftNodeHost node, long maxBodyBytes)
    {
        var target = NodeId.None;
        // A body sent chunked has no Content-Length: ask Kestrel whether there is one (a chunked {"to":…} was ignored before).
        if (http.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true)
        {
            var (request, problem) = await ReadAsync(http, maxBodyBytes, ContractsJson.Strict.TransferLeaderRequest).ConfigureAwait(false);
            if (problem is not null)
            {
                return problem;
            }
            if (request?.To is { } to && !NodeId.TryParse(to, out target))
            {
                return Invalid("to", $"'{to}' is not a node id (n2 or 2)");
            }
        }
        var answer = await node.TransferLeadershipAsync(target, http.RequestAborted).ConfigureAwait(false);
        if (answer.Status == AnswerStatus.Ok)
        {
            return TypedResults.Json(new LeaderResponse(answer.Leader.ToString(), answer.Term.Value), ContractsJson.Default.LeaderResponse);
        }
        return Failure(http, answer, "to");
    }

    /// <summary>
    /// GET /cluster/snapshot: a backup. On the leader, after a ReadIndex round (every write acknowledged before the request is
    /// in it; ?consistency=stale: any node, at once), the applied state is captured, written as a snapshot file (checksummed,
    /// with its index, term and configuration) beside the data directory, and streamed. Followers answer 503 naming the leader.
    /// </summary>
    private static async Task SnapshotAsync(HttpContext http, RaftNodeHost node)
    {
        if (http.RequestServices.GetRequiredService<RaftAccess>().Check(http, RaftRole.Admin) is { } denied)
        {
            await WriteProblemAsync(http, RaftAccess.Problem(denied)).ConfigureAwait(false);
            return;
        }
        var stale = http.Request.Query["consistency"] == "stale";
        if (node.Config.Members.IsEmpty)
        {
            await WriteProblemAsync(http, Problem(503, "urn:raftkv:problem:unavailable", "Not a member", "this node has no configuration yet (it waits to be added): nothing to back up")).ConfigureAwait(false);
            return;
        }
        var (outcome, state) = await node.Loop.CaptureAsync(linearizable: !stale).WaitAsync(TimeSpan.FromSeconds(30), http.RequestAborted).ConfigureAwait(false);
        if (state is null)
        {
            http.Response.Headers.RetryAfter = "1";
            var leader = outcome.LeaderHint.IsNone ? null : outcome.LeaderHint.ToString();
            await WriteProblemAsync(http, Problem(503, "urn:raftkv:problem:not-leader", "Not the leader",
                (outcome.Reason ?? "not the leader") + "; ask the leader, or add ?consistency=stale to back up this node's applied state", null, leader)).ConfigureAwait(false);
            return;
        }
        var scratch = Path.Combine(node.DataDirectory, "backup-" + Guid.NewGuid().ToString("N")[..12]);
        try
        {
            var files = new Storage.PhysicalFileSystem(scratch);
            // Written off the request thread: the capture writes synchronously.
            await Task.Run(() =>
            {
                using var writer = new Storage.FileSnapshotStore(files).Create(state.Metadata);
                state.State.WriteTo(writer.Stream);
                writer.Commit();
            }, http.RequestAborted).ConfigureAwait(false);
            var path = Path.Combine(scratch, Storage.FileSnapshotStore.PathFor(state.Metadata));
            http.Response.ContentType = "application/octet-stream";
            http.Response.Headers["X-Raft-Snapshot-Index"] = state.Metadata.Index.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
            http.Response.Headers["X-Raft-Snapshot-Term"] = state.Metadata.Term.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
            http.Response.Headers.ContentDisposition = $"attachment; filename=\"raftkv-{node.Identity.ClusterIdText}-{state.Metadata.Index.Value}.snap\"";
            await http.Response.SendFileAsync(path, http.RequestAborted).ConfigureAwait(false);
        }
        finally
        {
            try
            {
                Directory.Delete(scratch, recursive: true);
            }
            catch (IOException)
            {
                // Left for the operator; named backup-* in the data directory.
            }
        }
    }

    private static Task WriteProblemAsync(HttpContext http, JsonHttpResult<ProblemResponse> problem) => problem.ExecuteAsync(http);

    private static ClusterResult Result(HttpContext http, RaftNodeHost node, NodeAnswer answer, bool created)
    {
        if (answer.Status != AnswerStatus.Ok)
        {
            return Failure(http, answer, "id");
        }
        var config = ClusterConfig.Decode(answer.Result.Span);
        return TypedResults.Json(Describe(node, config, answer.Leader, changeInFlight: false, match: null), ContractsJson.Default.MembersResponse,
            statusCode: created ? StatusCodes.Status201Created : StatusCodes.Status200OK);
    }

    internal static MembersResponse Describe(RaftNodeHost node, ClusterConfig config, NodeId leader, bool changeInFlight, Dictionary<NodeId, LogIndex>? match)
    {
        var members = config.Members.Select(id =>
        {
            var (peer, client) = config.Addresses.TryGetValue(id, out var address) ? MemberAddress.Parse(address) : (null, null);
            var role = config.Voters.Contains(id) ? "voter" : config.Learners.Contains(id) ? "learner" : "outgoing";
            ulong? matched = match is not null && match.TryGetValue(id, out var m) ? m.Value : null;
            // A bootstrap configuration names peer URLs only: then the client URL is what the member says on its peer calls.
            return new MemberResponse(id.ToString(), role, (peer ?? node.Peers.GetValueOrDefault(id))?.ToString(), (client ?? node.ClientUrlOf(id))?.ToString(),
                id == leader, matched);
        }).ToList();
        return new MembersResponse(node.Identity.ClusterIdText, leader.IsNone ? null : leader.ToString(), config.IsJoint, changeInFlight || config.IsJoint, members);
    }

    private static JsonHttpResult<ProblemResponse> Failure(HttpContext http, NodeAnswer answer, string field)
    {
        var leader = answer.Leader.IsNone ? null : answer.Leader.ToString();
        switch (answer.Status)
        {
            case AnswerStatus.Invalid:
                return Invalid(field, answer.Reason ?? "refused");
            case AnswerStatus.Conflict:
                return Problem(409, "urn:raftkv:problem:conflict", "Refused for now", answer.Reason ?? "another change is in flight", null, leader);
            case AnswerStatus.NoLeader or AnswerStatus.Unavailable or AnswerStatus.Lost:
                http.Response.Headers.RetryAfter = "1";
                return Problem(503, "urn:raftkv:problem:unavailable", "No change made", (answer.Reason ?? "no leader") + "; nothing was changed, retry", null, leader);
            default:
                return Problem(504, "urn:raftkv:problem:outcome-unknown", "Outcome unknown",
                    (answer.Reason ?? "no outcome in time") + "; the change may or may not be made: check GET /cluster/members", null, leader);
        }
    }

    private static async Task<(T? Request, JsonHttpResult<ProblemResponse>? Problem)> ReadAsync<T>(HttpContext http, long maxBodyBytes,
        System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) where T : class
    {
        if (http.Request.ContentLength > maxBodyBytes)
        {
            return (null, Problem(413, "urn:raftkv:problem:too-large", "Request too large", $"body: at most {maxBodyBytes} bytes", "body"));
        }
        try
        {
            return (await JsonSerializer.DeserializeAsync(http.Request.Body, type, http.RequestAborted).ConfigureAwait(false), null);
        }
        catch (JsonException error)
        {
            var field = string.IsNullOrEmpty(error.Path) || error.Path == "$" ? "body" : error.Path.TrimStart('$', '.');
            return (null, Invalid(field, "malformed JSON: " + error.Message.Split('\n')[0]));
        }
    }

    private static bool IsHttpUrl(string? text, out Uri? url) =>
        Uri.TryCreate(text, UriKind.Absolute, out url) && url.Scheme == Uri.UriSchemeHttp && !url.IsDefaultPort && url.AbsolutePath == "/";

    private static JsonHttpResult<ProblemResponse> Invalid(string field, string detail) =>
        Problem(400, "urn:raftkv:problem:invalid-request", "Invalid request", $"{field}: {detail}", field);

    private static JsonHttpResult<ProblemResponse> Problem(int status, string type, string title, string detail, string? field = null, string? leader = null) =>
        TypedResults.Json(new ProblemResponse(type, title, status, detail, field, leader), ContractsJson.Default.ProblemResponse, ProblemResponse.ContentType, status);
}
