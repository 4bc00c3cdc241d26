using System.Text;
using RaftKv.Contracts;
using RaftKv.Hosting;
using RaftKv.StateMachine;

namespace RaftKv.Server;

/// <summary>A request the KV store will run: the command and how to read; or the one problem that stops it.</summary>
internal readonly record struct KvRequest(KvCommand? Command, ReadConsistency Consistency, ProblemResponse? Problem);

/// <summary>Every check of a KV request, in one place, for POST /command and the REST routes alike. Nothing runs on a problem.</summary>
internal static class KvRequests
{
    public static KvRequest Validate(CommandRequest request, KvOptions settings)
    {
        if (string.IsNullOrWhiteSpace(request.Type))
        {
            return Invalid(400, "type", "missing: one of GET, SET, DELETE, CAS");
        }
        KvOperation operation;
        switch (request.Type.ToUpperInvariant())
        {
            case "GET": operation = KvOperation.Get; break;
            case "SET" or "PUT": operation = KvOperation.Set; break;
            case "DELETE": operation = KvOperation.Delete; break;
            case "CAS": operation = KvOperation.Cas; break;
            default: return Invalid(400, "type", $"unknown type '{request.Type}': one of GET, SET, DELETE, CAS");
        }
        if (string.IsNullOrEmpty(request.Key))
        {
            return Invalid(400, "key", "missing or empty");
        }
        var keyBytes = Encoding.UTF8.GetByteCount(request.Key);
        if (keyBytes > settings.MaxKeyBytes)
        {
            return Invalid(400, "key", $"{keyBytes} bytes; keys are at most {settings.MaxKeyBytes} bytes");
        }
        string Name() => operation.ToString().ToUpperInvariant(); // for messages only
        if (operation is KvOperation.Set or KvOperation.Cas)
        {
            if (request.Value is null)
            {
                return Invalid(400, "value", $"missing: {Name()} needs a value");
            }
            var valueBytes = Encoding.UTF8.GetByteCount(request.Value);
            if (valueBytes > settings.MaxValueBytes)
            {
                return Invalid(413, "value", $"{valueBytes} bytes; values are at most {settings.MaxValueBytes} bytes");
            }
        }
        else if (request.Value is not null)
        {
            return Invalid(400, "value", $"{Name()} takes no value");
        }
        if (operation == KvOperation.Cas)
        {
            if (request.Expected is null && request.ExpectedVersion is null)
            {
                return Invalid(400, "expected", "CAS needs expected (a value) or expectedVersion (0: the key must not exist)");
            }
            if (request.Expected is not null && Encoding.UTF8.GetByteCount(request.Expected) > settings.MaxValueBytes)
            {
                return Invalid(413, "expected", $"values are at most {settings.MaxValueBytes} bytes");
            }
        }
        else if (request.Expected is not null || request.ExpectedVersion is not null)
        {
            return Invalid(400, request.Expected is not null ? "expected" : "expectedVersion", "only CAS takes an expected value or version");
        }
        if (SessionProblem(request.ClientId, request.Seq) is { } session)
        {
            return new KvRequest(null, default, session);
        }
        if (operation == KvOperation.Get && request.ClientId is not null)
        {
            return Invalid(400, "clientId", "reads take no session");
        }
        if (request.Lease is not (null or 0) && operation is not (KvOperation.Set or KvOperation.Cas))
        {
            return Invalid(400, "lease", $"{Name()} takes no lease: only SET and CAS write with one");
        }
        ReadConsistency consistency;
        switch (request.Consistency?.ToLowerInvariant())
        {
            case null or "linearizable": consistency = ReadConsistency.Linearizable; break;
            case "stale" when operation == KvOperation.Get: consistency = ReadConsistency.Stale; break;
            case "stale": return Invalid(400, "consistency", "only reads can be stale");
            default: return Invalid(400, "consistency", $"'{request.Consistency}': linearizable or stale");
        }
        var command = new KvCommand(operation, request.Key, request.Value, request.Expected, request.ExpectedVersion, request.ClientId, request.Seq ?? 0,
            request.Lease ?? 0);
        return new KvRequest(command, consistency, null);
    }

    /// <summary>400 (or 413 for a size) naming the field that is wrong.</summary>
    /// <summary>The session of a write (POST /command or /txn): clientId and seq together, an id of 1 to 256 characters, seq from 1.</summary>
    public static ProblemResponse? SessionProblem(string? clientId, ulong? seq)
    {
        if ((clientId is null) != (seq is null))
        {
            return Problem(400, clientId is null ? "clientId" : "seq", "clientId and seq go together (exactly-once sessions)");
        }
        if (clientId is not null && (clientId.Length is 0 or > 256))
        {
            return Problem(400, "clientId", "between 1 and 256 characters");
        }
        return seq == 0 ? Problem(400, "seq", "sequence numbers start at 1") : null;
    }

    /// <summary>The query of GET /kv: prefix, after, limit, countOnly, consistency; each bad one is named.</summary>
    public static (KvRangeQuery? Query, ReadConsistency Consistency, ProblemResponse? Problem) ValidateList(
        Microsoft.AspNetCore.Http.IQueryCollection query, KvOptions settings)
    {
        var prefix = query["prefix"].FirstOrDefault() ?? "";
        var after = query["after"].FirstOrDefault();
        foreach (var (field, text) in new[] { ("prefix", prefix), ("after", after) })
        {
            if (text is not null && Encoding.UTF8.GetByteCount(text) > settings.MaxKeyBytes)
            {
                return (null, default, Problem(400, field, $"{Encoding.UTF8.GetByteCount(text)} bytes; keys are at most {settings.MaxKeyBytes} bytes"));
            }
        }
        var limit = 100;
        if (query["limit"].FirstOrDefault() is { } limitText && (!int.TryParse(limitText, out limit) || limit is < 1 or > KvRangeQuery.MaxLimit))
        {
            return (null, default, Problem(400, "limit", $"'{limitText}': a whole number from 1 to {KvRangeQuery.MaxLimit}"));
        }
        var countOnly = false;
        if (query["countOnly"].FirstOrDefault() is { } countText && !bool.TryParse(countText, out countOnly))
        {
            return (null, default, Problem(400, "countOnly", $"'{countText}': true or false"));
        }
        ReadConsistency consistency;
        switch (query["consistency"].FirstOrDefault()?.ToLowerInvariant())
        {
            case null or "linearizable": consistency = ReadConsistency.Linearizable; break;
            case "stale": consistency = ReadConsistency.Stale; break;
            default: return (null, default, Problem(400, "consistency", $"'{query["consistency"]}': linearizable or stale"));
        }
        return (new KvRangeQuery(prefix, after, limit, countOnly), consistency, null);
    }

    public static KvRequest Invalid(int status, string field, string detail) => new(null, default, Problem(status, field, detail));

    public static ProblemResponse Problem(int status, string field, string detail) => status == 413
        ? new ProblemResponse("urn:raftkv:problem:too-large", "Request too large", 413, $"{field}: {detail}", field)
        : new ProblemResponse("urn:raftkv:problem:invalid-request", "Invalid request", status, $"{field}: {detail}", field);
}
