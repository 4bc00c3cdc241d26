using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http.HttpResults;
using RaftKv.Hosting;
using RaftKv.RaftCore;

namespace RaftKv.Samples.Counter;

/// <summary>POST /counter/add {"by": 5} and GET /counter[?consistency=stale]: the whole HTTP face of the sample.</summary>
public static class CounterApi
{
    public static WebApplication MapCounterApi(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var counter = app.MapClientGroup("/counter");
        counter.MapPost("/add", AddAsync).RequireRaftRole(RaftRole.Write);
        counter.MapGet("", ReadAsync);
        return app;
    }

    private static async Task<Results<Ok<CounterValue>, BadRequest<CounterProblem>, JsonHttpResult<CounterProblem>>> AddAsync(HttpContext http, IRaftNode node)
    {
        AddRequest? request;
        try
        {
            request = await JsonSerializer.DeserializeAsync(http.Request.Body, CounterJson.Default.AddRequest, http.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException error)
        {
            return TypedResults.BadRequest(new CounterProblem("by", "malformed JSON: " + error.Message));
        }
        if (request?.By is not { } by)
        {
            return TypedResults.BadRequest(new CounterProblem("by", "missing: the amount to add"));
        }
        var answer = await node.ProposeAsync(CounterStateMachine.Add(by), http.RequestAborted).ConfigureAwait(false);
        if (answer.Status != AnswerStatus.Ok)
        {
            return Unavailable(answer);
        }
        var (ok, value) = CounterStateMachine.ReadAnswer(answer.Result.Span);
        return ok
            ? TypedResults.Ok(new CounterValue(value, answer.Index.Value))
            : TypedResults.BadRequest(new CounterProblem("by", $"adding {by} to {value} would overflow"));
    }

    private static async Task<Results<Ok<CounterValue>, BadRequest<CounterProblem>, JsonHttpResult<CounterProblem>>> ReadAsync(HttpContext http, IRaftNode node, string? consistency)
    {
        var read = consistency switch
        {
            null or "linearizable" => ReadConsistency.Linearizable,
            "stale" => ReadConsistency.Stale,
            _ => (ReadConsistency?)null,
        };
        if (read is null)
        {
            return TypedResults.BadRequest(new CounterProblem("consistency", $"'{consistency}': linearizable or stale"));
        }
        var answer = await node.ReadAsync(ReadOnlyMemory<byte>.Empty, read.Value, http.RequestAborted).ConfigureAwait(false);
        return answer.Status == AnswerStatus.Ok
            ? TypedResults.Ok(new CounterValue(CounterStateMachine.ReadAnswer(answer.Result.Span).Value, answer.Index.Value))
            : Unavailable(answer);
    }

    /// <summary>This application's choice: every answer that is not Ok is a 503 that says why (a retry of an add may count twice).</summary>
    private static JsonHttpResult<CounterProblem> Unavailable(NodeAnswer answer) =>
        TypedResults.Json(new CounterProblem(null, $"{answer.Status}: {answer.Reason}"), CounterJson.Default.CounterProblem, statusCode: 503);
}

public sealed record AddRequest(long? By);

public sealed record CounterValue(long Value, ulong Index);

public sealed record CounterProblem(string? Field, string Detail);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(AddRequest))]
[JsonSerializable(typeof(CounterValue))]
[JsonSerializable(typeof(CounterProblem))]
internal sealed partial class CounterJson : JsonSerializerContext;
