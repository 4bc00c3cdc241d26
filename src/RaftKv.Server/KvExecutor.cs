using System.Text.Json;
using Grpc.Core;
using Microsoft.Extensions.Options;
using RaftKv.Node;
using RaftKv.RaftCore;
using RaftKv.StateMachine;
using RaftKv.Transport;

namespace RaftKv.Server;

/// <summary>
/// An HTTP answer as status, JSON body and the leader to name; the same shape is relayed when forwarding.
/// <paramref name="NotFound"/>: the command found no such key (REST answers such a GET with 404).
/// </summary>
public sealed record HttpAnswer(int Status, ReadOnlyMemory<byte> Body, bool IsProblem, string? Leader, int? RetryAfterSeconds = null, bool NotFound = false);

/// <summary>
/// Runs client commands on this node, or hands them to the leader. Writes are proposed and answered once applied;
/// linearizable reads go through ReadIndex on the leader; stale reads are answered from what this node applied.
/// A request whose outcome cannot be known in time is answered 504 and says so: retry it with the same client id and
/// sequence number, and the session applies it at most once.
/// </summary>
public sealed partial class KvExecutor(NodeHost node, IOptions<ServerOptions> options, RaftMetrics metrics, ILogger<KvExecutor> logger)
{
    private readonly ServerOptions _options = options.Value;

    /// <summary>A request from a client of this node.</summary>
    public async Task<HttpAnswer> ExecuteAsync(KvCommand command, bool linearizable, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(command);
        var encoded = command.Encode();
        var local = !command.IsWrite && !linearizable;
        var leader = node.Loop.KnownLeader;
        if (local || leader == node.Self)
        {
            var answer = await ExecuteHereAsync(command.IsWrite, encoded, linearizable, cancellationToken).ConfigureAwait(false);
            if (answer.Status != 421)
            {
                return answer;
            }
            leader = node.Loop.KnownLeader; // leadership moved while we tried
        }
        return await ForwardAsync(command.IsWrite, encoded, linearizable, leader, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>A request a follower forwarded: run here or say who leads; never forwarded again.</summary>
    public async Task<ForwardAnswer> ExecuteForwardedAsync(ForwardedRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        KvCommand command;
        try
        {
            command = KvCommand.Decode(request.Command.Span); // checked here, before the bytes reach the log or a read
        }
        catch (FormatException error)
        {
            var bad = Problem(400, "invalid-command", "Malformed forwarded command", error.Message, "body");
            return new ForwardAnswer(bad.Status, bad.Body, null, IsProblem: true, NotFound: false);
        }
        var answer = await ExecuteHereAsync(command.IsWrite, request.Command, request.Linearizable, cancellationToken).ConfigureAwait(false);
        if (answer.Status == 421)
        {
            answer = NoLeader("the leader changed while the request was forwarded");
        }
        return new ForwardAnswer(answer.Status, answer.Body, answer.Leader, answer.IsProblem, answer.NotFound);
    }

    /// <summary>Runs the encoded command on this node. 421 (misdirected) means: this node is not the leader.</summary>
    private async Task<HttpAnswer> ExecuteHereAsync(bool write, ReadOnlyMemory<byte> encoded, bool linearizable, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_options.RequestTimeout);
        try
        {
            if (write)
            {
                var outcome = await node.Loop.ProposeAsync(encoded).WaitAsync(timeout.Token).ConfigureAwait(false);
                metrics.ProposalOutcome(outcome.Status);
                return outcome.Status switch
                {
                    ProposalStatus.Applied => Result((KvResult)outcome.Result!, outcome.Term),
                    ProposalStatus.NotLeader => Misdirected(),
                    ProposalStatus.Lost => Problem(503, "not-applied", "Write not applied", "another leader's entry took its place; nothing was applied, retry", null, 1),
                    ProposalStatus.Rejected => Problem(503, "unavailable", "Node cannot take writes now", outcome.Reason ?? "refused", null, 1),
                    _ => Unknown(outcome.Reason ?? "the node lost track of the write"),
                };
            }
            var read = await node.Loop.ReadAsync(encoded, linearizable).WaitAsync(timeout.Token).ConfigureAwait(false);
            return read.Status switch
            {
                ReadOutcomeStatus.Ok => Result((KvResult)read.Result!, node.Loop.KnownTerm),
                ReadOutcomeStatus.NotLeader => Misdirected(),
                _ => Problem(503, "unavailable", "Node cannot serve reads now", read.Reason ?? "unavailable", null, 1),
            };
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return write
                ? Unknown($"no outcome within {_options.RequestTimeoutMs} ms")
                : Problem(504, "timeout", "Read timed out", $"no answer within {_options.RequestTimeoutMs} ms; nothing was changed", null);
        }
    }

    private async Task<HttpAnswer> ForwardAsync(bool write, ReadOnlyMemory<byte> encoded, bool linearizable, NodeId leader, CancellationToken cancellationToken)
    {
        if (leader.IsNone || leader == node.Self || !node.Peers.ContainsKey(leader))
        {
            return NoLeader("no leader is known right now (an election may be under way)");
        }
        try
        {
            // The leader answers within its own request timeout; the extra second covers the trip.
            var answer = await node.Transport.ForwardAsync(leader, new ForwardedRequest(node.Self, encoded, linearizable),
                _options.RequestTimeout + TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            metrics.Forwarded();
            return new HttpAnswer(answer.Status, answer.Body, answer.IsProblem, answer.Leader ?? leader.ToString(),
                answer.Status == 503 ? 1 : null, answer.NotFound);
        }
        catch (RpcException error) when (error.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal or StatusCode.Cancelled)
        {
            LogForwardFailed(leader, error.Status.Detail);
            return write
                ? Unknown($"the leader {leader} did not answer the forwarded write ({error.StatusCode})")
                : Problem(503, "unavailable", "Leader unreachable", $"the leader {leader} did not answer ({error.StatusCode}); nothing was read", null, 1);
        }
    }

    private HttpAnswer Result(KvResult result, Term term)
    {
        var status = result.Ok ? 200 : 409;
        var error = result.Error switch
        {
            KvError.None => null,
            KvError.CasMismatch => "cas_mismatch",
            KvError.StaleSequence => "stale_sequence",
            _ => "malformed",
        };
        var leader = node.Loop.KnownLeader;
        var leaderName = leader.IsNone ? null : leader.ToString();
        var body = new CommandResponse(result.Ok, result.Value, result.Found, result.Version, result.Index, term.Value, leaderName, error);
        return new HttpAnswer(status, JsonSerializer.SerializeToUtf8Bytes(body, ApiJson.Default.CommandResponse), false, leaderName,
            NotFound: !result.Found);
    }

    private static HttpAnswer Misdirected() => new(421, ReadOnlyMemory<byte>.Empty, true, null);

    private HttpAnswer NoLeader(string detail)
    {
        var leader = node.Loop.KnownLeader;
        return Problem(503, "no-leader", "No leader", detail, null, 1, leader.IsNone ? null : leader.ToString());
    }

    private static HttpAnswer Unknown(string detail) =>
        Problem(504, "outcome-unknown", "Outcome unknown",
            detail + ". The write may or may not be applied: retry with the same clientId and seq to apply it at most once.", null);

    public static HttpAnswer Problem(int status, string type, string title, string detail, string? field, int? retryAfter = null, string? leader = null)
    {
        var problem = new Problem("urn:raftkv:problem:" + type, title, status, detail, field, leader);
        return new HttpAnswer(status, JsonSerializer.SerializeToUtf8Bytes(problem, ApiJson.Default.Problem), true, leader, retryAfter);
    }

    [LoggerMessage(EventId = 401, Level = LogLevel.Warning, Message = "forwarding to the leader {Leader} failed: {Detail}")]
    private partial void LogForwardFailed(NodeId leader, string detail);
}
