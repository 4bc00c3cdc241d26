using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using RaftKv.Node;
using RaftKv.StateMachine;

namespace RaftKv.Server;

/// <summary>The client API (DESIGN.md): POST /command, GET|PUT|DELETE /kv/{key}, GET /status.</summary>
public static class Endpoints
{
    public const string LeaderHeader = "X-Raft-Leader";

    public static void MapClientApi(this IEndpointRouteBuilder app, Action<IEndpointConventionBuilder> restrict)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(restrict);
        restrict(app.MapPost("/command", CommandAsync));
        restrict(app.MapGet("/kv/{**key}", (HttpContext http, string key, KvExecutor executor, IOptions<ServerOptions> options) =>
            KeyAsync(http, KvOperation.Get, key, executor, options.Value)));
        restrict(app.MapPut("/kv/{**key}", (HttpContext http, string key, KvExecutor executor, IOptions<ServerOptions> options) =>
            KeyAsync(http, KvOperation.Set, key, executor, options.Value)));
        restrict(app.MapDelete("/kv/{**key}", (HttpContext http, string key, KvExecutor executor, IOptions<ServerOptions> options) =>
            KeyAsync(http, KvOperation.Delete, key, executor, options.Value)));
        restrict(app.MapGet("/status", StatusAsync));
    }

    private static async Task CommandAsync(HttpContext http, KvExecutor executor, IOptions<ServerOptions> options)
    {
        var settings = options.Value;
        if (!IsJson(http.Request.ContentType))
        {
            await WriteAsync(http, Invalid(400, "Content-Type", $"POST /command takes application/json, not '{http.Request.ContentType ?? "nothing"}'")).ConfigureAwait(false);
            return;
        }
        var (body, tooLarge) = await ReadBodyAsync(http, settings.MaxRequestBodyBytes).ConfigureAwait(false);
        if (tooLarge)
        {
            await WriteAsync(http, Invalid(413, "body", $"the request body is larger than {settings.MaxRequestBodyBytes} bytes")).ConfigureAwait(false);
            return;
        }
        CommandRequest? request;
        try
        {
            request = JsonSerializer.Deserialize(body, ApiJson.Strict.CommandRequest);
        }
        catch (JsonException error)
        {
            // A value of the wrong kind names its field; broken syntax names the body.
            var aboutAField = error.Message.Contains("could not be converted", StringComparison.Ordinal)
                || error.Message.Contains("could not be mapped", StringComparison.Ordinal);
            var field = !aboutAField || string.IsNullOrEmpty(error.Path) || error.Path == "$" ? "body" : error.Path.TrimStart('$', '.');
            await WriteAsync(http, Invalid(400, field, "malformed JSON: " + FirstLine(error.Message))).ConfigureAwait(false);
            return;
        }
        if (request is null)
        {
            await WriteAsync(http, Invalid(400, "body", "the body must be a JSON object")).ConfigureAwait(false);
            return;
        }
        var answer = await ExecuteAsync(http, request, executor, settings).ConfigureAwait(false);
        await WriteAsync(http, answer).ConfigureAwait(false);
    }

    /// <summary>A valid request is executed; an invalid one is answered with its problem and changes nothing.</summary>
    private static async Task<HttpAnswer> ExecuteAsync(HttpContext http, CommandRequest request, KvExecutor executor, ServerOptions settings)
    {
        var (command, linearizable, problem) = Validate(request, settings);
        return problem ?? await executor.ExecuteAsync(command!, linearizable, http.RequestAborted).ConfigureAwait(false);
    }

    private static async Task KeyAsync(HttpContext http, KvOperation operation, string key, KvExecutor executor, ServerOptions settings)
    {
        var query = http.Request.Query;
        var request = new CommandRequest
        {
            Type = operation.ToString().ToUpperInvariant(),
            Key = key,
            ClientId = query["clientId"].FirstOrDefault(),
            Consistency = query["consistency"].FirstOrDefault(),
        };
        if (query["seq"].FirstOrDefault() is { } seq)
        {
            if (!ulong.TryParse(seq, out var number))
            {
                await WriteAsync(http, Invalid(400, "seq", $"'{seq}' is not a sequence number")).ConfigureAwait(false);
                return;
            }
            request.Seq = number;
        }
        if (operation == KvOperation.Set)
        {
            var (body, tooLarge) = await ReadBodyAsync(http, settings.MaxRequestBodyBytes).ConfigureAwait(false);
            if (tooLarge)
            {
                await WriteAsync(http, Invalid(413, "body", $"the request body is larger than {settings.MaxRequestBodyBytes} bytes")).ConfigureAwait(false);
                return;
            }
            try
            {
                request.Value = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(body);
            }
            catch (DecoderFallbackException)
            {
                await WriteAsync(http, Invalid(400, "value", "the value must be UTF-8 text")).ConfigureAwait(false);
                return;
            }
        }
        var answer = await ExecuteAsync(http, request, executor, settings).ConfigureAwait(false);
        if (operation == KvOperation.Get && answer.Status == 200 && answer.NotFound)
        {
            answer = answer with { Status = 404 }; // REST: a missing key is 404, with the same body
        }
        await WriteAsync(http, answer).ConfigureAwait(false);
    }

    /// <summary>Turns a request into a command, or into one problem naming the field that is wrong.</summary>
    internal static (KvCommand? Command, bool Linearizable, HttpAnswer? Problem) Validate(CommandRequest request, ServerOptions settings)
    {
        if (string.IsNullOrWhiteSpace(request.Type))
        {
            return (null, false, Invalid(400, "type", "missing: one of GET, SET, DELETE, CAS"));
        }
        KvOperation operation;
        switch (request.Type.ToUpperInvariant())
        {
            case "GET": operation = KvOperation.Get; break;
            case "SET" or "PUT": operation = KvOperation.Set; break;
            case "DELETE": operation = KvOperation.Delete; break;
            case "CAS": operation = KvOperation.Cas; break;
            default: return (null, false, Invalid(400, "type", $"unknown type '{request.Type}': one of GET, SET, DELETE, CAS"));
        }
        if (string.IsNullOrEmpty(request.Key))
        {
            return (null, false, Invalid(400, "key", "missing or empty"));
        }
        var keyBytes = Encoding.UTF8.GetByteCount(request.Key);
        if (keyBytes > settings.MaxKeyBytes)
        {
            return (null, false, Invalid(400, "key", $"{keyBytes} bytes; keys are at most {settings.MaxKeyBytes} bytes"));
        }
        if (operation is KvOperation.Set or KvOperation.Cas)
        {
            if (request.Value is null)
            {
                return (null, false, Invalid(400, "value", $"missing: {operation.ToString().ToUpperInvariant()} needs a value"));
            }
            var valueBytes = Encoding.UTF8.GetByteCount(request.Value);
            if (valueBytes > settings.MaxValueBytes)
            {
                return (null, false, Invalid(413, "value", $"{valueBytes} bytes; values are at most {settings.MaxValueBytes} bytes"));
            }
        }
        else if (request.Value is not null)
        {
            return (null, false, Invalid(400, "value", $"{operation.ToString().ToUpperInvariant()} takes no value"));
        }
        if (operation == KvOperation.Cas)
        {
            if (request.Expected is null && request.ExpectedVersion is null)
            {
                return (null, false, Invalid(400, "expected", "CAS needs expected (a value) or expectedVersion (0: the key must not exist)"));
            }
            if (request.Expected is not null && Encoding.UTF8.GetByteCount(request.Expected) > settings.MaxValueBytes)
            {
                return (null, false, Invalid(413, "expected", $"values are at most {settings.MaxValueBytes} bytes"));
            }
        }
        else if (request.Expected is not null || request.ExpectedVersion is not null)
        {
            return (null, false, Invalid(400, request.Expected is not null ? "expected" : "expectedVersion", "only CAS takes an expected value or version"));
        }
        if ((request.ClientId is null) != (request.Seq is null))
        {
            return (null, false, Invalid(400, request.ClientId is null ? "clientId" : "seq", "clientId and seq go together (exactly-once sessions)"));
        }
        if (request.ClientId is not null && (request.ClientId.Length is 0 or > 256))
        {
            return (null, false, Invalid(400, "clientId", "between 1 and 256 characters"));
        }
        if (request.Seq == 0)
        {
            return (null, false, Invalid(400, "seq", "sequence numbers start at 1"));
        }
        if (operation == KvOperation.Get && request.ClientId is not null)
        {
            return (null, false, Invalid(400, "clientId", "reads take no session"));
        }
        bool linearizable;
        switch (request.Consistency?.ToLowerInvariant())
        {
            case null or "linearizable": linearizable = true; break;
            case "stale" when operation == KvOperation.Get: linearizable = false; break;
            case "stale": return (null, false, Invalid(400, "consistency", "only reads can be stale"));
            default: return (null, false, Invalid(400, "consistency", $"'{request.Consistency}': linearizable or stale"));
        }
        var command = new KvCommand(operation, request.Key, request.Value, request.Expected, request.ExpectedVersion, request.ClientId, request.Seq ?? 0);
        return (command, linearizable, null);
    }

    private static async Task StatusAsync(HttpContext http, NodeHost node)
    {
        NodeStatus status;
        try
        {
            status = await node.Loop.GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(5), http.RequestAborted).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            await WriteAsync(http, KvExecutor.Problem(503, "unavailable", "Node busy", "the node loop did not report its status within 5 s", null, 1)).ConfigureAwait(false);
            return;
        }
        var raft = status.Raft;
        var progress = raft.Peers.ToDictionary(p => p.Id);
        var connected = node.Transport.Connected;
        var dropped = node.Transport.DroppedMessages;
        var peers = node.Peers.Keys.Where(id => id != node.Self).Select(id =>
        {
            progress.TryGetValue(id, out var p);
            return new PeerStatusResponse(
                id.ToString(),
                node.Peers[id].ToString(),
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
        if (http.Request.Query.ContainsKey("digest"))
        {
            var (hash, index) = node.StateMachine.Digest();
            digest = hash.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
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
        http.Response.ContentType = "application/json";
        await JsonSerializer.SerializeAsync(http.Response.Body, response, ApiJson.Default.StatusResponse, http.RequestAborted).ConfigureAwait(false);
    }

    internal static async Task WriteAsync(HttpContext http, HttpAnswer answer)
    {
        http.Response.StatusCode = answer.Status;
        if (answer.Leader is not null)
        {
            http.Response.Headers[LeaderHeader] = answer.Leader;
        }
        if (answer.RetryAfterSeconds is { } seconds)
        {
            http.Response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        http.Response.ContentType = answer.IsProblem ? "application/problem+json" : "application/json";
        await http.Response.Body.WriteAsync(answer.Body, http.RequestAborted).ConfigureAwait(false);
    }

    private static HttpAnswer Invalid(int status, string field, string detail) =>
        KvExecutor.Problem(status, status == 413 ? "too-large" : "invalid-request", status == 413 ? "Request too large" : "Invalid request", $"{field}: {detail}", field);

    private static bool IsJson(string? contentType) =>
        contentType is not null && (contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase)
            || contentType.StartsWith("application/problem+json", StringComparison.OrdinalIgnoreCase));

    /// <summary>Reads the whole body, or stops at the limit (without reading what a client sends beyond it).</summary>
    private static async Task<(byte[] Body, bool TooLarge)> ReadBodyAsync(HttpContext http, long limit)
    {
        if (http.Request.ContentLength > limit)
        {
            return ([], true);
        }
        var feature = http.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (feature is { IsReadOnly: false })
        {
            feature.MaxRequestBodySize = limit;
        }
        using var buffer = new MemoryStream();
        try
        {
            await http.Request.Body.CopyToAsync(buffer, http.RequestAborted).ConfigureAwait(false);
        }
        catch (BadHttpRequestException error) when (error.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return ([], true);
        }
        return buffer.Length > limit ? ([], true) : (buffer.ToArray(), false);
    }

    private static string FirstLine(string text)
    {
        var end = text.IndexOf('\n', StringComparison.Ordinal);
        return end < 0 ? text : text[..end].TrimEnd();
    }
}
