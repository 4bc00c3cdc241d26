using System.Diagnostics;
using System.Net.Http.Json;
using System.Reflection;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Net.Http.Headers;
using RaftKv.Contracts;

namespace RaftKv.Hosting.Dashboard;

/// <summary>One member as the dashboard shows it: up (its status) or down (why).</summary>
internal sealed record DashboardMember(string Id, string Role, string? ClientUrl, bool Up, string? Error, StatusResponse? Status,
    IReadOnlyList<DashboardSecond>? History);

/// <summary>One second of one node's client requests; P99Ms is the upper bound of the bucket holding the 99th percentile.</summary>
internal sealed record DashboardSecond(long T, int Writes, int Reads, double? P99Ms);

internal sealed record DashboardLeaderChange(long AtMs, string? Leader, ulong Term);

/// <summary>GET /ui/api/cluster: every member of the serving node's configuration, asked for its status by the serving node.</summary>
internal sealed record DashboardCluster(string Self, string ClusterId, string? Leader, long TakenAtMs, IReadOnlyList<DashboardMember> Members,
    IReadOnlyList<DashboardLeaderChange> LeaderChanges);

/// <summary>GET /ui/api/history: this node's own last seconds.</summary>
internal sealed record DashboardHistoryResponse(string Node, IReadOnlyList<DashboardSecond> Seconds);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(DashboardCluster))]
[JsonSerializable(typeof(DashboardHistoryResponse))]
[JsonSerializable(typeof(StatusResponse))]
internal sealed partial class DashboardJson : JsonSerializerContext;

/// <summary>
/// The live dashboard at /ui: three static files (embedded in this assembly, no build step) and two JSON routes. The page
/// asks the node it was loaded from, which asks every member of its configuration for /status and /ui/api/history (1 s
/// each, in parallel) so that the browser talks to one origin; a member that does not answer is shown as down. With client
/// tokens on, the JSON routes need the read role (the page asks for a token and sends it as a bearer token).
/// </summary>
internal static class DashboardEndpoints
{
    private static readonly TimeSpan MemberTimeout = TimeSpan.FromSeconds(1);

    private static readonly (string Path, string Resource, string ContentType)[] Files =
    [
        ("/ui", "ui/index.html", "text/html; charset=utf-8"),
        ("/ui/app.js", "ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "ui/style.css", "text/css; charset=utf-8"),
    ];

    public static void Map(RouteGroupBuilder client, RaftNodeHost node, RequestHistory history, HttpClient members)
    {
        foreach (var (path, resource, contentType) in Files)
        {
            var bytes = Resource(resource);
            client.MapGet(path, () => Results.Bytes(bytes, contentType)).ExcludeFromDescription();
        }
        client.MapGet("/ui/api/history", (HttpContext http) => HistoryOf(node, history, http))
            .RequireRaftRole(RaftRole.Read);
        // A typed delegate, so that the route writes the result (a lambda of HttpContext alone would be a RequestDelegate).
        Func<HttpContext, Task<IResult>> cluster = http => ClusterAsync(http, node, history, members);
        client.MapGet("/ui/api/cluster", cluster).RequireRaftRole(RaftRole.Read);
    }

    /// <summary>Records every client request except the dashboard's own, /metrics, /status, /health and /cluster.</summary>
    public static IApplicationBuilder UseRequestHistory(this IApplicationBuilder app, RequestHistory history) =>
        app.Use(async (http, next) =>
        {
            var path = http.Request.Path;
            if (path.StartsWithSegments("/ui") || path.StartsWithSegments("/metrics") || path.StartsWithSegments("/status")
                || path.StartsWithSegments("/health") || path.StartsWithSegments("/cluster") || path.StartsWithSegments("/raftkv.peer.v1.RaftPeer"))
            {
                await next(http).ConfigureAwait(false);
                return;
            }
            var started = Stopwatch.GetTimestamp();
            await next(http).ConfigureAwait(false);
            history.Record(!HttpMethods.IsGet(http.Request.Method), Stopwatch.GetElapsedTime(started));
        });

    private static IResult HistoryOf(RaftNodeHost node, RequestHistory history, HttpContext http)
    {
        var seconds = int.TryParse(http.Request.Query["seconds"], out var asked) ? asked : 60;
        return Results.Json(new DashboardHistoryResponse(node.Self.ToString(), Seconds(history, seconds)), DashboardJson.Default.DashboardHistoryResponse);
    }

    private static List<DashboardSecond> Seconds(RequestHistory history, int seconds) =>
        [.. history.Last(seconds).Select(s => new DashboardSecond(s.UnixSeconds, s.Writes, s.Reads, s.P99Ms))];

    private static async Task<IResult> ClusterAsync(HttpContext http, RaftNodeHost node, RequestHistory history, HttpClient client)
    {
        var seconds = int.TryParse(http.Request.Query["seconds"], out var asked) ? Math.Clamp(asked, 1, RequestHistory.Seconds - 1) : 60;
        var self = await StatusEndpoint.BuildAsync(node, withDigest: false, http.RequestAborted).ConfigureAwait(false);
        var leader = self?.Leader;
        var described = ClusterEndpoints.Describe(node, node.Config, RaftCore.NodeId.TryParse(leader ?? "", out var id) ? id : RaftCore.NodeId.None, false, null);
        var authorization = http.Request.Headers[HeaderNames.Authorization].ToString();
        var members = await Task.WhenAll(described.Members.Select(member => member.Id == node.Self.ToString()
            ? Task.FromResult(new DashboardMember(member.Id, member.Role, member.ClientUrl, self is not null, self is null ? "the node loop did not answer" : null,
                self, Seconds(history, seconds)))
            : AskAsync(client, member, authorization, seconds, http.RequestAborted))).ConfigureAwait(false);
        var changes = history.LeaderChanges().Select(c => new DashboardLeaderChange(c.AtUnixMs, c.Leader.IsNone ? null : c.Leader.ToString(), c.Term.Value)).ToList();
        return Results.Json(new DashboardCluster(node.Self.ToString(), described.ClusterId, leader, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), members, changes),
            DashboardJson.Default.DashboardCluster);
    }

    private static async Task<DashboardMember> AskAsync(HttpClient client, MemberResponse member, string authorization, int seconds, CancellationToken cancellationToken)
    {
        if (member.ClientUrl is null)
        {
            return new DashboardMember(member.Id, member.Role, null, false, "the configuration names no client URL for it", null, null);
        }
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(MemberTimeout);
        try
        {
            var baseUrl = new Uri(member.ClientUrl);
            var status = await GetAsync(client, new Uri(baseUrl, "status"), authorization, DashboardJson.Default.StatusResponse, timeout.Token).ConfigureAwait(false);
            var history = await GetAsync(client, new Uri(baseUrl, $"ui/api/history?seconds={seconds}"), authorization,
                DashboardJson.Default.DashboardHistoryResponse, timeout.Token).ConfigureAwait(false);
            return new DashboardMember(member.Id, member.Role, member.ClientUrl, true, null, status, history?.Seconds);
        }
        catch (Exception error) when (error is HttpRequestException or OperationCanceledException or System.Text.Json.JsonException)
        {
            var reason = error is OperationCanceledException ? $"no answer within {MemberTimeout.TotalSeconds:0} s" : error.Message;
            return new DashboardMember(member.Id, member.Role, member.ClientUrl, false, reason, null, null);
        }
    }

    private static async Task<T?> GetAsync<T>(HttpClient client, Uri url, string authorization, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type,
        CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (authorization.Length > 0)
        {
            request.Headers.TryAddWithoutValidation(HeaderNames.Authorization, authorization);
        }
        using var response = await client.SendAsync(request, cancellationToken).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync(type, cancellationToken).ConfigureAwait(false);
    }

    private static byte[] Resource(string name)
    {
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"the dashboard's {name} is not embedded in {Assembly.GetExecutingAssembly().GetName().Name}");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
