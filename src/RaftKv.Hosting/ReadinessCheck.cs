using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;
using RaftKv.Contracts;

namespace RaftKv.Hosting;

/// <summary>
/// Ready to serve: the storage works, a leader is known, and this node has applied what it knows is committed (within a
/// small lag). Liveness (/health) only asks whether the process answers.
/// </summary>
internal sealed class ReadinessCheck(RaftNodeHost node, IOptions<NodeOptions> options) : IHealthCheck
{
    private readonly ulong _maxApplyLag = (ulong)options.Value.ReadyMaxApplyLagEntries;

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        Node.NodeStatus status;
        try
        {
            status = await node.Loop.GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(2), cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return HealthCheckResult.Unhealthy("the node loop did not answer within 2 s");
        }
        var raft = status.Raft;
        if (status.StorageFailure is { } failure)
        {
            return HealthCheckResult.Unhealthy("storage failed: " + failure);
        }
        if (raft.Leader.IsNone)
        {
            return HealthCheckResult.Unhealthy($"no leader known in term {raft.Term.Value}");
        }
        if (raft.Commit.Value - raft.Applied.Value > _maxApplyLag)
        {
            return HealthCheckResult.Unhealthy($"applied {raft.Applied.Value} is more than {_maxApplyLag} behind commit {raft.Commit.Value}");
        }
        return HealthCheckResult.Healthy($"{raft.Role.ToString().ToLowerInvariant()} in term {raft.Term.Value}, leader {raft.Leader}, applied {raft.Applied.Value} of commit {raft.Commit.Value}");
    }

    /// <summary>Writes {"status":"Healthy","detail":"..."} so that a probe's log says why.</summary>
    public static Task WriteAsync(HttpContext http, HealthReport report)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(report);
        http.Response.ContentType = "application/json";
        var detail = string.Join("; ", report.Entries.Values.Select(e => e.Description).OfType<string>());
        var body = new HealthResponse(report.Status.ToString(), detail.Length > 0 ? detail : null);
        return http.Response.Body.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(body, ContractsJson.Default.HealthResponse)).AsTask();
    }
}
