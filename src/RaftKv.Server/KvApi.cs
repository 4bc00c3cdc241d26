using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using RaftKv.Contracts;
using RaftKv.Hosting;
using RaftKv.RaftCore;
using RaftKv.StateMachine;
using KvHttpResult = Microsoft.AspNetCore.Http.HttpResults.Results<
    RaftKv.Server.KvAnswerResult,
    Microsoft.AspNetCore.Http.HttpResults.JsonHttpResult<RaftKv.Contracts.ProblemResponse>>;

namespace RaftKv.Server;

/// <summary>
/// The KV application on the node runtime: its state machine and settings (<see cref="AddKvStore"/>) and its routes
/// (<see cref="MapKvApi"/>): POST /command and GET|PUT|DELETE /kv/{key} (DESIGN.md). Requests are checked in
/// <see cref="KvRequests"/>, run through <see cref="IRaftNode"/> as encoded commands, and the node's answer is given its
/// HTTP meaning here: 200, 404 (REST GET of a missing key), 409 (CAS mismatch), 503 + Retry-After (no leader, not applied),
/// 504 (outcome unknown: retry with the same clientId and seq).
/// </summary>
public static class KvApi
{
    public const string LeaderHeader = "X-Raft-Leader";

    /// <summary>The KV state machine and the RaftKv:Kv settings.</summary>
    public static RaftNodeBuilder AddKvStore(this RaftNodeBuilder node)
    {
        ArgumentNullException.ThrowIfNull(node);
        node.AddSettings<KvOptions>("Kv");
        node.Services.AddSingleton<IValidateOptions<KvOptions>, BodyFitsValidator>();
        node.UseStateMachine(services => new KvStateMachine(services.GetRequiredService<IOptions<KvOptions>>().Value));
        node.UseLeaderRequests(services => new LeaseClock(services.GetRequiredService<KvStateMachine>(), TimeProvider.System));
        node.Services.AddHostedService(services => new LeaseExpiry(services.GetRequiredService<IRaftNode>(), services.GetRequiredService<LeaseClock>(),
            TimeProvider.System, services.GetRequiredService<ILogger<LeaseExpiry>>()));
        return node;
    }

    public static WebApplication MapKvApi(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        // Resolved once, when the routes are mapped (settings are validated by then): nothing is looked up per request.
        var node = app.Services.GetRequiredService<IRaftNode>();
        var access = app.Services.GetRequiredService<RaftAccess>();
        var limits = new KvLimits(app.Services.GetRequiredService<IOptions<KvOptions>>().Value,
            app.Services.GetRequiredService<IOptions<NodeOptions>>().Value.MaxRequestBodyBytes, access);
        var kv = app.MapClientGroup(); // every route needs a read token (when tokens are on); writes need write, checked per command
        Func<HttpContext, Task<KvHttpResult>> command = http => CommandAsync(http, node, limits); // a route handler, not a RequestDelegate
        kv.MapPost("/command", command);
        Func<HttpContext, Task<IResult>> txn = http => TxnAsync(http, node, limits);
        kv.MapPost("/txn", txn);
        Func<HttpContext, Task<IResult>> list = http => ListAsync(http, node, limits);
        kv.MapGet("/kv", list);
        kv.MapGet("/kv/{**key}", (HttpContext http, string key) => KeyAsync(http, KvOperation.Get, key, node, limits));
        kv.MapPut("/kv/{**key}", (HttpContext http, string key) => KeyAsync(http, KvOperation.Set, key, node, limits));
        kv.MapDelete("/kv/{**key}", (HttpContext http, string key) => KeyAsync(http, KvOperation.Delete, key, node, limits));
        WatchApi.Map(kv, app.Services.GetRequiredService<KvStateMachine>(), limits.Kv);
        LeaseApi.Map(kv, node, limits.Kv, access);
        return app;
    }

    /// <summary>The bounds a KV request is checked against: the KV settings, the largest body the node reads, and who may write.</summary>
    private sealed record KvLimits(KvOptions Kv, long BodyBytes, RaftAccess Access);

    private static async Task<KvHttpResult> CommandAsync(HttpContext http, IRaftNode node, KvLimits limits)
    {
        if (!IsJson(http.Request.ContentType))
        {
            return Problem(KvRequests.Problem(400, "Content-Type", $"POST /command takes application/json, not '{http.Request.ContentType ?? "nothing"}'"));
        }
        var body = await ReadBodyAsync(http, limits.BodyBytes).ConfigureAwait(false);
        if (body is null)
        {
            return TooLarge(limits.BodyBytes);
        }
        var (request, malformed) = Parse(body, ContractsJson.Strict.CommandRequest);
        if (malformed is not null)
        {
            return Problem(malformed);
        }
        return await ExecuteAsync(http, KvRequests.Validate(request!, limits.Kv), node, limits.Access, rest: false).ConfigureAwait(false);
    }

    /// <summary>
    /// POST /txn: compares, then the success or the failure operations, as one log entry (<see cref="KvTxn"/>). A
    /// transaction that writes needs the write role; one that only reads, the read role. 200 with the results whether the
    /// comparisons held or not (succeeded says which); 409 for a stale session sequence.
    /// </summary>
    private static async Task<IResult> TxnAsync(HttpContext http, IRaftNode node, KvLimits limits)
    {
        if (!IsJson(http.Request.ContentType))
        {
            return Problem(KvRequests.Problem(400, "Content-Type", $"POST /txn takes application/json, not '{http.Request.ContentType ?? "nothing"}'"));
        }
        var body = await ReadBodyAsync(http, limits.BodyBytes).ConfigureAwait(false);
        if (body is null)
        {
            return TooLarge(limits.BodyBytes);
        }
        var (request, malformed) = Parse(body, ContractsJson.Strict.TxnRequest);
        if (malformed is not null)
        {
            return Problem(malformed);
        }
        var (transaction, problem) = TxnRequests.Validate(request!, limits.Kv);
        if (problem is not null)
        {
            return Problem(problem);
        }
        if (!TxnRequests.ReadsOnly(transaction!) && limits.Access.Check(http, RaftRole.Write) is { } denied)
        {
            return Problem(denied);
        }
        var answer = await node.ProposeAsync(transaction!.Encode(), http.RequestAborted).ConfigureAwait(false);
        if (answer.Status != AnswerStatus.Ok || answer.Result.IsEmpty || answer.Result.Span[0] != KvTxn.Format)
        {
            // Not a transaction's answer: a refusal (stale sequence), or the node's own (no leader, outcome unknown, …).
            return Answer(http, answer, missingIs404: false);
        }
        var leader = NameLeader(http, answer);
        KvTxnResult result;
        try
        {
            result = KvTxnResult.Decode(answer.Result.Span);
        }
        catch (FormatException error)
        {
            return Problem(new ProblemResponse("urn:raftkv:problem:outcome-unknown", "Outcome unknown", 504,
                $"the answer could not be read ({error.Message}). The transaction may or may not be applied: retry with the same clientId and seq."));
        }
        var results = result.Results.Select(r => new TxnOperationResult(r.Kind.ToString().ToUpperInvariant(), r.Key, r.Found, r.Value, r.Version, r.CreateRevision)).ToList();
        return TypedResults.Json(new TxnResponse(result.Succeeded, results, result.Index, answer.Term.Value, leader), ContractsJson.Default.TxnResponse);
    }

    private static async Task<KvHttpResult> KeyAsync(HttpContext http, KvOperation operation, string key, IRaftNode node, KvLimits limits)
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
                return Problem(KvRequests.Problem(400, "seq", $"'{seq}' is not a sequence number"));
            }
            request.Seq = number;
        }
        if (query["lease"].FirstOrDefault() is { } leaseText)
        {
            if (!ulong.TryParse(leaseText, out var lease))
            {
                return Problem(KvRequests.Problem(400, "lease", $"'{leaseText}' is not a lease id"));
            }
            request.Lease = lease;
        }
        if (operation == KvOperation.Set)
        {
            var body = await ReadBodyAsync(http, limits.BodyBytes).ConfigureAwait(false);
            if (body is null)
            {
                return TooLarge(limits.BodyBytes);
            }
            try
            {
                request.Value = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(body);
            }
            catch (DecoderFallbackException)
            {
                return Problem(KvRequests.Problem(400, "value", "the value must be UTF-8 text"));
            }
        }
        return await ExecuteAsync(http, KvRequests.Validate(request, limits.Kv), node, limits.Access, rest: true).ConfigureAwait(false);
    }

    /// <summary>
    /// GET /kv?prefix=P&amp;limit=N&amp;after=K&amp;countOnly=true&amp;consistency=stale: a page of the keys with the prefix (all keys
    /// without one), linearizable unless asked otherwise. The limit defaults to 100 and is at most 1,000.
    /// </summary>
    private static async Task<IResult> ListAsync(HttpContext http, IRaftNode node, KvLimits limits)
    {
        var (query, consistency, problem) = KvRequests.ValidateList(http.Request.Query, limits.Kv);
        if (problem is not null)
        {
            return Problem(problem);
        }
        var answer = await node.ReadAsync(query!.Encode(), consistency, http.RequestAborted).ConfigureAwait(false);
        if (answer.Status != AnswerStatus.Ok)
        {
            return Answer(http, answer, missingIs404: false);
        }
        var leader = NameLeader(http, answer);
        KvRangeResult page;
        try
        {
            page = KvRangeResult.Decode(answer.Result.Span);
        }
        catch (FormatException error)
        {
            return Problem(new ProblemResponse("urn:raftkv:problem:outcome-unknown", "Answer unreadable", 504, $"the answer could not be read ({error.Message}); nothing was changed"));
        }
        var items = page.Items.Select(i => new KvListItem(i.Key, i.Value, i.Version)).ToList();
        return TypedResults.Json(new KvListResponse(items, page.Count, page.More, page.More && items.Count > 0 ? items[^1].Key : null, page.Index,
            answer.Term.Value, leader), ContractsJson.Default.KvListResponse);
    }

    /// <summary>A valid request is run on the cluster; an invalid one is answered with its problem and changes nothing.</summary>
    private static async Task<KvHttpResult> ExecuteAsync(HttpContext http, KvRequest request, IRaftNode node, RaftAccess access, bool rest)
    {
        if (request.Problem is { } problem)
        {
            return Problem(problem);
        }
        var command = request.Command!;
        if (command.IsWrite && access.Check(http, RaftRole.Write) is { } denied)
        {
            return Problem(denied);
        }
        var encoded = command.Encode();
        var answer = command.IsWrite
            ? await node.ProposeAsync(encoded, http.RequestAborted).ConfigureAwait(false)
            : await node.ReadAsync(encoded, request.Consistency, http.RequestAborted).ConfigureAwait(false);
        return Answer(http, answer, rest && command.Operation == KvOperation.Get);
    }

    /// <summary>What the node's answer means over HTTP.</summary>
    internal static KvHttpResult Answer(HttpContext http, NodeAnswer answer, bool missingIs404)
    {
        var leader = NameLeader(http, answer);
        switch (answer.Status)
        {
            case AnswerStatus.Ok:
                KvResult result;
                try
                {
                    result = KvResult.Decode(answer.Result.Span);
                }
                catch (FormatException error)
                {
                    // Not this application's answer (a peer of another version?): what happened is unknown.
                    return Problem(new ProblemResponse("urn:raftkv:problem:outcome-unknown", "Outcome unknown", 504,
                        $"the answer could not be read ({error.Message}). A write may or may not be applied: retry with the same clientId and seq."));
                }
                var body = new KvResponse(result.Ok, result.Value, result.Found, result.Version, result.Index, answer.Term.Value, leader, Error(result.Error));
                var status = result.Error == KvError.LeaseNotFound ? 404 : !result.Ok ? 409 : missingIs404 && !result.Found ? 404 : 200;
                return new KvAnswerResult(status, body);
            case AnswerStatus.TooLarge:
                return Problem(KvRequests.Problem(413, "body", answer.Reason ?? "the command is larger than the node takes"));
            case AnswerStatus.NoLeader:
                return Retry(http, new ProblemResponse("urn:raftkv:problem:no-leader", "No leader", 503, answer.Reason ?? "no leader is known right now", null, leader));
            case AnswerStatus.Lost:
                return Retry(http, new ProblemResponse("urn:raftkv:problem:not-applied", "Write not applied", 503,
                    (answer.Reason ?? "another leader's entry took its place") + "; nothing was applied, retry"));
            case AnswerStatus.Unavailable:
                return Retry(http, new ProblemResponse("urn:raftkv:problem:unavailable", "Node cannot serve this now", 503, answer.Reason ?? "unavailable"));
            case AnswerStatus.TimedOut:
                return Problem(new ProblemResponse("urn:raftkv:problem:timeout", "Read timed out", 504, (answer.Reason ?? "no answer in time") + "; nothing was changed"));
            default:
                return Problem(new ProblemResponse("urn:raftkv:problem:outcome-unknown", "Outcome unknown", 504,
                    (answer.Reason ?? "the outcome is unknown") + ". The write may or may not be applied: retry with the same clientId and seq to apply it at most once."));
        }
    }

    /// <summary>The leader the answer names (null if none), also put in the X-Raft-Leader header.</summary>
    internal static string? NameLeader(HttpContext http, NodeAnswer answer)
    {
        if (answer.Leader.IsNone)
        {
            return null;
        }
        var leader = answer.Leader.Value < (ulong)LeaderNames.Length ? LeaderNames[answer.Leader.Value] : answer.Leader.ToString();
        http.Response.Headers[LeaderHeader] = leader;
        return leader;
    }

    /// <summary>The names of the first node ids, made once: every answer names its leader.</summary>
    private static readonly string[] LeaderNames = [.. Enumerable.Range(0, 64).Select(i => new NodeId((ulong)i).ToString())];

    private static string? Error(KvError error) => error switch
    {
        KvError.None => null,
        KvError.CasMismatch => KvResponse.CasMismatchError,
        KvError.StaleSequence => "stale_sequence",
        KvError.LeaseNotFound => KvResponse.LeaseNotFoundError,
        _ => "malformed",
    };

    internal static KvHttpResult Problem(ProblemResponse problem) =>
        TypedResults.Json(problem, ContractsJson.Default.ProblemResponse, ProblemResponse.ContentType, problem.Status);

    private static KvHttpResult Retry(HttpContext http, ProblemResponse problem)
    {
        http.Response.Headers.RetryAfter = "1";
        return Problem(problem);
    }

    internal static KvHttpResult TooLarge(long limit) =>
        Problem(KvRequests.Problem(413, "body", $"the request body is larger than {limit} bytes"));

    internal static bool IsJson(string? contentType) =>
        contentType is not null && (contentType.StartsWith("application/json", StringComparison.OrdinalIgnoreCase)
            || contentType.StartsWith(ProblemResponse.ContentType, StringComparison.OrdinalIgnoreCase));

    /// <summary>Reads the whole body; null when it is over the limit (without reading what a client sends beyond it).</summary>
    internal static async Task<byte[]?> ReadBodyAsync(HttpContext http, long limit)
    {
        if (http.Request.ContentLength > limit)
        {
            return null;
        }
        var feature = http.Features.Get<IHttpMaxRequestBodySizeFeature>();
        if (feature is { IsReadOnly: false })
        {
            feature.MaxRequestBodySize = limit;
        }
        if (http.Request.ContentLength is { } length)
        {
            // The length is known (and no more than the limit): read into an array of that size, with no copy. Kestrel ends
            // the body at the length, and fails a body that ends short.
            var exact = new byte[length];
            await http.Request.Body.ReadExactlyAsync(exact, http.RequestAborted).ConfigureAwait(false);
            return exact;
        }
        using var buffer = new MemoryStream();
        try
        {
            await http.Request.Body.CopyToAsync(buffer, http.RequestAborted).ConfigureAwait(false);
        }
        catch (BadHttpRequestException error) when (error.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            return null;
        }
        return buffer.Length > limit ? null : buffer.ToArray();
    }

    /// <summary>A request body as <typeparamref name="T"/>; or the problem: a value of the wrong kind names its field, broken syntax the body.</summary>
    internal static (T? Request, ProblemResponse? Problem) Parse<T>(byte[] body, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) where T : class
    {
        try
        {
            return JsonSerializer.Deserialize(body, type) is { } request
                ? (request, null)
                : (null, KvRequests.Problem(400, "body", "the body must be a JSON object"));
        }
        catch (JsonException error)
        {
            var aboutAField = error.Message.Contains("could not be converted", StringComparison.Ordinal)
                || error.Message.Contains("could not be mapped", StringComparison.Ordinal);
            var field = !aboutAField || string.IsNullOrEmpty(error.Path) || error.Path == "$" ? "body" : error.Path.TrimStart('$', '.');
            return (null, KvRequests.Problem(400, field, "malformed JSON: " + FirstLine(error.Message)));
        }
    }

    private static string FirstLine(string text)
    {
        var end = text.IndexOf('\n', StringComparison.Ordinal);
        return end < 0 ? text : text[..end].TrimEnd();
    }

    /// <summary>
    /// The largest request must fit in the largest body the node reads, and its command (key, value and expected value,
    /// a client id of 256 characters, the codec's framing) in the largest command the node takes.
    /// </summary>
    private sealed class BodyFitsValidator(IOptions<NodeOptions> node, IServiceProvider services) : IValidateOptions<KvOptions>
    {
        private const int CommandFramingBytes = 19 + (4 * 4) + (256 * 4);

        public ValidateOptionsResult Validate(string? name, KvOptions options)
        {
            long bodyLimit;
            int commandLimit;
            try
            {
                bodyLimit = node.Value.MaxRequestBodyBytes;
                commandLimit = services.MaxCommandBytes();
            }
            catch (OptionsValidationException)
            {
                return ValidateOptionsResult.Skip; // the runtime's own sections are reported on their own
            }
            var failures = new List<string>();
            if (bodyLimit < (long)options.MaxKeyBytes + options.MaxValueBytes)
            {
                failures.Add($"RaftKv:Kv:MaxValueBytes: {options.MaxKeyBytes} + {options.MaxValueBytes} bytes of key and value do not fit in RaftKv:Node:MaxRequestBodyBytes ({bodyLimit})");
            }
            var largestCommand = (long)options.MaxKeyBytes + (2L * options.MaxValueBytes) + CommandFramingBytes;
            if (largestCommand > commandLimit)
            {
                failures.Add($"RaftKv:Kv:MaxValueBytes: the largest command ({largestCommand} bytes: key, value, expected value, client id) is larger than the node takes ({commandLimit}, from RaftKv:Storage:MaxEntryBytes)");
            }
            return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
        }
    }
}

/// <summary>
/// A KV answer over HTTP: 200, 404 (a REST read of a missing key) or 409 (the state machine refused: CAS mismatch, stale
/// sequence), with the <see cref="KvResponse"/> as JSON. Serialized once with the contracts' generated metadata and sent
/// with its length, the same bytes as before typed results.
/// </summary>
public sealed class KvAnswerResult(int statusCode, KvResponse value)
    : IResult, IStatusCodeHttpResult, IValueHttpResult, IValueHttpResult<KvResponse>, IContentTypeHttpResult
{
    public int StatusCode { get; } = statusCode;

    public KvResponse Value { get; } = value;

    public string ContentType => "application/json";

    int? IStatusCodeHttpResult.StatusCode => StatusCode;

    object? IValueHttpResult.Value => Value;

    // The answer is written into this thread's buffer and copied into the response's pipe before anything awaits, so the
    // buffer is free again when Write returns: no array per answer.
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    /// <summary>Answers larger than this do not keep their buffer on the thread.</summary>
    private const int KeptBufferBytes = 64 * 1024;

    public Task ExecuteAsync(HttpContext httpContext)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(1024);
        buffer.ResetWrittenCount();
        var writer = t_writer ??= new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = true });
        writer.Reset(buffer);
        JsonSerializer.Serialize(writer, Value, ContractsJson.Default.KvResponse);
        var response = httpContext.Response;
        response.StatusCode = StatusCode;
        response.ContentType = ContentType;
        response.ContentLength = buffer.WrittenCount;
        response.BodyWriter.Write(buffer.WrittenSpan);
        if (buffer.Capacity > KeptBufferBytes)
        {
            t_buffer = null;
            t_writer = null;
        }
        var flushed = response.BodyWriter.FlushAsync(httpContext.RequestAborted);
        return flushed.IsCompletedSuccessfully ? Task.CompletedTask : flushed.AsTask();
    }
}
