using System.Text;
using System.Text.Json;
using RaftKv.Contracts;
using RaftKv.StateMachine;

namespace RaftKv.Server;

/// <summary>
/// GET /watch?key=K or ?prefix=P, with fromRevision=N (or a Last-Event-ID header to resume) and prevValue=true: the
/// changes this node applies, as Server-Sent Events, in revision order with no gaps. Each event's id is
/// "revision.sequence" (a transaction's changes share a revision). A position older than the node's history answers 410
/// with the oldest revision it can start from, and a watcher that falls that far behind while streaming gets a
/// "compacted" event and the stream ends: list again, then watch from the listing's index + 1. Any node serves a watch:
/// every node applies the same changes in the same order.
/// </summary>
internal static class WatchApi
{
    private const int BatchEvents = 256;
    private static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);

    public static void Map(RouteGroupBuilder kv, KvStateMachine machine, KvOptions options)
    {
        var watchers = new WatcherCount();
        Func<HttpContext, Task> watch = http => WatchAsync(http, machine, options, watchers);
        kv.MapGet("/watch", watch);
    }

    private static async Task WatchAsync(HttpContext http, KvStateMachine machine, KvOptions options, WatcherCount watchers)
    {
        var query = http.Request.Query;
        var key = query["key"].FirstOrDefault();
        var prefix = query["prefix"].FirstOrDefault();
        if ((key is null) == (prefix is null))
        {
            await ProblemAsync(http, KvRequests.Problem(400, key is null ? "key" : "prefix", "watch one key (key=) or a prefix (prefix=), not both and not neither")).ConfigureAwait(false);
            return;
        }
        if (Encoding.UTF8.GetByteCount(key ?? prefix!) > options.MaxKeyBytes)
        {
            await ProblemAsync(http, KvRequests.Problem(400, key is null ? "prefix" : "key", $"keys are at most {options.MaxKeyBytes} bytes")).ConfigureAwait(false);
            return;
        }
        var withPrevious = false;
        if (query["prevValue"].FirstOrDefault() is { } previousText && !bool.TryParse(previousText, out withPrevious))
        {
            await ProblemAsync(http, KvRequests.Problem(400, "prevValue", $"'{previousText}': true or false")).ConfigureAwait(false);
            return;
        }
        (ulong Revision, int Sequence) position;
        if (http.Request.Headers["Last-Event-ID"].FirstOrDefault() is { Length: > 0 } lastId)
        {
            if (!WatchEvent.TryParseId(lastId, out var revision, out var sequence))
            {
                await ProblemAsync(http, KvRequests.Problem(400, "Last-Event-ID", $"'{lastId}' is not an event id (revision.sequence)")).ConfigureAwait(false);
                return;
            }
            position = (revision, sequence);
        }
        else if (query["fromRevision"].FirstOrDefault() is { } fromText)
        {
            if (!ulong.TryParse(fromText, out var from) || from == 0)
            {
                await ProblemAsync(http, KvRequests.Problem(400, "fromRevision", $"'{fromText}': a revision, at least 1")).ConfigureAwait(false);
                return;
            }
            position = (from - 1, int.MaxValue); // every change at fromRevision and after
        }
        else
        {
            position = (machine.Revision, int.MaxValue); // changes from now on
        }
        var oldest = machine.History.CompactedThrough;
        if (position.Revision < oldest)
        {
            await ProblemAsync(http, new ProblemResponse("urn:raftkv:problem:compacted", "Revision compacted", 410,
                $"fromRevision: this node keeps changes after revision {oldest} only; list the keys (GET /kv?prefix=…) and watch from the listing's index + 1, or from {oldest + 1}",
                "fromRevision")).ConfigureAwait(false);
            return;
        }
        if (Interlocked.Increment(ref watchers.Streams) > options.MaxWatchers)
        {
            Interlocked.Decrement(ref watchers.Streams);
            http.Response.Headers.RetryAfter = "1";
            await ProblemAsync(http, new ProblemResponse("urn:raftkv:problem:too-many-watchers", "Too many watchers", 503,
                $"this node serves at most {options.MaxWatchers} watch streams (RaftKv:Kv:MaxWatchers); try another node or later")).ConfigureAwait(false);
            return;
        }
        try
        {
            await StreamAsync(http, machine, key, prefix, withPrevious, position).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The watcher went away.
        }
        catch (IOException) when (http.RequestAborted.IsCancellationRequested)
        {
            // The connection broke mid-write.
        }
        finally
        {
            Interlocked.Decrement(ref watchers.Streams);
        }
    }

    private static async Task StreamAsync(HttpContext http, KvStateMachine machine, string? key, string? prefix, bool withPrevious, (ulong Revision, int Sequence) position)
    {
        var response = http.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        Func<WatchEvent, bool> matches = key is not null
            ? change => change.Key == key
            : change => change.Key.StartsWith(prefix!, StringComparison.Ordinal);
        var aborted = http.RequestAborted;
        await response.WriteAsync($": watching {(key is not null ? "key " + key : "prefix " + prefix)} after revision {position.Revision}\n\n", aborted).ConfigureAwait(false);
        await response.Body.FlushAsync(aborted).ConfigureAwait(false);
        while (!aborted.IsCancellationRequested)
        {
            var events = machine.History.After(ref position, matches, BatchEvents, out var changed);
            if (events is null)
            {
                // Fell behind the history this node keeps: say so, and end; the client lists again and watches anew.
                var oldest = machine.History.CompactedThrough;
                await response.WriteAsync($"event: compacted\ndata: {{\"compactedThrough\":{oldest}}}\n\n", aborted).ConfigureAwait(false);
                await response.Body.FlushAsync(aborted).ConfigureAwait(false);
                return;
            }
            if (events.Count > 0)
            {
                foreach (var change in events)
                {
                    await response.Body.WriteAsync(Frame(change, withPrevious), aborted).ConfigureAwait(false);
                }
                await response.Body.FlushAsync(aborted).ConfigureAwait(false);
                continue; // there may be more already
            }
            var woke = await Task.WhenAny(changed, Task.Delay(KeepAlive, aborted)).ConfigureAwait(false);
            if (woke != changed && !aborted.IsCancellationRequested)
            {
                await response.WriteAsync(": keep-alive\n\n", aborted).ConfigureAwait(false);
                await response.Body.FlushAsync(aborted).ConfigureAwait(false);
            }
        }
    }

    // Each change is encoded once for every watcher that sends it (with and without its previous value), not once per
    // watcher, and kept on the change itself (a lookup table of weak references cost more than the encoding it saved).
    private static byte[] Frame(WatchEvent change, bool withPrevious)
    {
        if ((withPrevious ? change.EncodedWithPrevious : change.Encoded) is { } encoded)
        {
            return encoded;
        }
        var data = new WatchEventData(change.Type == WatchEventType.Put ? "PUT" : "DELETE", change.Key, change.Value, change.Revision,
            withPrevious ? change.PreviousValue : null);
        encoded = Encoding.UTF8.GetBytes(
            $"id: {change.Id}\nevent: {(change.Type == WatchEventType.Put ? "put" : "delete")}\ndata: {JsonSerializer.Serialize(data, ContractsJson.Default.WatchEventData)}\n\n");
        // Two watchers may both encode it: the same bytes either way.
        if (withPrevious)
        {
            change.EncodedWithPrevious = encoded;
        }
        else
        {
            change.Encoded = encoded;
        }
        return encoded;
    }

    /// <summary>The watch streams this node serves now (at most MaxWatchers).</summary>
    private sealed class WatcherCount
    {
        public int Streams;
    }

    private static Task ProblemAsync(HttpContext http, ProblemResponse problem) =>
        TypedResults.Json(problem, ContractsJson.Default.ProblemResponse, ProblemResponse.ContentType, problem.Status).ExecuteAsync(http);
}
