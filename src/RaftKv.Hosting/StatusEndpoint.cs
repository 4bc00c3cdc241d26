using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using RaftKv.Contracts;
using RaftKv.RaftCore;

namespace RaftKv.Hosting;

/// <summary>GET /status: this node, its storage and its links, and on the leader every follower's progress.</summary>
internal static class StatusEndpoint
{
    public static async Task<Results<JsonHttpResult<StatusResponse>, JsonHttpResult<ProblemResponse>>> GetAsync(HttpContext http, RaftNodeHost node)
    {
        var response = await BuildAsync(node, http.Request.Query.ContainsKey("digest"), http.RequestAborted).ConfigureAwait(false);
        if (response is null)
        {
            http.Response.Headers.RetryAfter = "1";
            return TypedResults.Json(new ProblemResponse("urn:raftkv:problem:unavailable", "Node busy", 503, "the node loop did not report its status within 5 s"),
                ContractsJson.Default.ProblemResponse, ProblemResponse.ContentType, 503);
        }
        return TypedResults.Json(response, ContractsJson.Default.StatusResponse);
    }

    /// <summary>This node's status (with the state digest if asked); null if the loop did not answer within 5 s.</summary>
    public static async Task<StatusResponse?> BuildAsync(RaftNodeHost node, bool withDigest, CancellationToken cancellationToken)
    {
        Node.NodeStatus status;
        try
        {
            status = await node.Loop.GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(5), cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return null;
        }
        var raft = status.Raft;
        var progress = raft.Peers.ToDictionary(p => p.Id);
        var connected = node.Transport.Connected;
        var dropped = node.Transport.DroppedMessages;
        var addresses = node.Peers;
        var peers = addresses.Keys.Where(id => id != node.Self).Order().Select(id =>
        {
            progress.TryGetValue(id, out var p);
            return new Contracts.PeerStatus(
                id.ToString(),
                addresses[id].ToString(),
                connected.GetValueOrDefault(id),
                dropped.GetValueOrDefault(id),
                p?.State.ToString(),
                p?.Match.Value,
                p?.Next.Value,
                p is null ? null : raft.LastIndex.Value - Math.Min(raft.LastIndex.Value, p.Match.Value),
                p is null ? null : (long)(p.TicksSinceContact * node.TickSeconds * 1000));
        }).ToList();
        string? digest = null;
        ulong? digestIndex = null;
        if (withDigest && node.StateMachine is IStateDigest digester)
        {
            var (hash, index) = digester.Digest();
            digest = hash.ToString("x16", CultureInfo.InvariantCulture);
            digestIndex = index.Value;
        }
        var response = new StatusResponse(
            raft.Id.ToString(),
            raft.Role.ToString(),
            raft.Term.Value,
            raft.Leader.IsNone ? null : raft.Leader.ToString(),
            raft.Commit.Value,
            raft.Applied.Value,
            raft.LastIndex.Value,
            raft.FirstIndex.Value,
            raft.SnapshotIndex.Value,
            [.. raft.Config.Voters.Select(v => v.ToString())],
            new StorageStatus(status.StorageFailure is not null, status.StorageFailure, node.Log.SizeBytes, node.Log.SegmentCount, status.PendingProposals, status.DroppedMessages),
            peers,
            digest,
            digestIndex);
        return response;
    }
}
