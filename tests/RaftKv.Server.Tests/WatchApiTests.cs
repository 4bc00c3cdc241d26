using System.Net;
using System.Text.Json;
using static RaftKv.Server.Tests.Http;

namespace RaftKv.Server.Tests;

/// <summary>GET /watch: every change of a key or prefix in order, resumed exactly after Last-Event-ID, 410 past the history.</summary>
public sealed class WatchApiTests : IClassFixture<ServerFixture>
{
    private readonly ServerFixture _server;

    public WatchApiTests(ServerFixture server) => _server = server;

    private sealed record Sse(string? Id, string? Event, string? Data);

    /// <summary>Reads the next event (comments skipped) within 10 s.</summary>
    private static async Task<Sse> NextAsync(StreamReader reader)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        string? id = null, type = null, data = null;
        while (true)
        {
            var line = await reader.ReadLineAsync(timeout.Token) ?? throw new EndOfStreamException("the watch stream ended");
            if (line.Length == 0)
            {
                if (id is not null || type is not null || data is not null)
                {
                    return new Sse(id, type, data);
                }
                continue;
            }
            if (line.StartsWith(':'))
            {
                continue;
            }
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var (field, value) = (line[..colon], line[(colon + 1)..].TrimStart());
            switch (field)
            {
                case "id": id = value; break;
                case "event": type = value; break;
                case "data": data = value; break;
            }
        }
    }

    private static async Task<(HttpResponseMessage Response, StreamReader Reader)> OpenAsync(HttpClient client, string path, string? lastEventId = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Url(path));
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }
        var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Content.Headers.ContentType!.MediaType.Should().Be("text/event-stream");
        return (response, new StreamReader(await response.Content.ReadAsStreamAsync()));
    }

    [Fact]
    public async Task A_watcher_sees_every_change_of_its_prefix_in_order_and_a_reconnect_after_Last_Event_ID_sees_exactly_the_rest()
    {
        var client = await _server.ReadyClientAsync();
        var (first, reader) = await OpenAsync(client, "/watch?prefix=w/&prevValue=true");
        (await client.PutAsync(Url("/kv/w/a"), Json("1"))).EnsureSuccessStatusCode();
        (await client.PutAsync(Url("/kv/other"), Json("x"))).EnsureSuccessStatusCode();
        (await client.PutAsync(Url("/kv/w/b"), Json("2"))).EnsureSuccessStatusCode();

        var put1 = await NextAsync(reader);
        var put2 = await NextAsync(reader);
        first.Dispose(); // the watcher goes away after two events
        (await client.PutAsync(Url("/kv/w/a"), Json("3"))).EnsureSuccessStatusCode();
        (await client.DeleteAsync(Url("/kv/w/b"))).EnsureSuccessStatusCode();
        (await client.PostAsync(Url("/txn"), Json("""{"success":[{"type":"PUT","key":"w/c","value":"4"},{"type":"PUT","key":"w/d","value":"5"}]}"""))).EnsureSuccessStatusCode();
        var (second, resumed) = await OpenAsync(client, "/watch?prefix=w/&prevValue=true", lastEventId: put2.Id);
        using (second)
        {
            var rest = new[] { await NextAsync(resumed), await NextAsync(resumed), await NextAsync(resumed), await NextAsync(resumed) };

            Describe(put1).Should().Be("put w/a=1 prev=");
            Describe(put2).Should().Be("put w/b=2 prev=");
            rest.Select(Describe).Should().Equal("put w/a=3 prev=1", "delete w/b= prev=2", "put w/c=4 prev=", "put w/d=5 prev=");
            var ids = new[] { put1, put2 }.Concat(rest).Select(e => e.Id!).ToList();
            ids.Should().OnlyHaveUniqueItems();
            rest[2].Id!.Split('.')[0].Should().Be(rest[3].Id!.Split('.')[0], "a transaction's changes share its revision");
            rest[2].Id.Should().EndWith(".0");
            rest[3].Id.Should().EndWith(".1");
        }
    }

    private static string Describe(Sse change)
    {
        using var json = JsonDocument.Parse(change.Data!);
        var root = json.RootElement;
        string Text(string name) => root.TryGetProperty(name, out var value) ? value.GetString() ?? "" : "";
        return $"{change.Event} {Text("key")}={Text("value")} prev={Text("prevValue")}";
    }

    [Fact]
    public async Task A_watch_from_a_revision_older_than_the_history_is_410_with_the_oldest_it_can_give()
    {
        var client = await _server.ReadyClientAsync();
        for (var i = 0; i < 80; i++)
        {
            (await client.PutAsync(Url("/kv/fill/" + i), Json("v"))).EnsureSuccessStatusCode(); // past the fixture's 64 changes
        }

        var response = await client.GetAsync(Url("/watch?key=fill/0&fromRevision=1"));

        response.StatusCode.Should().Be(HttpStatusCode.Gone);
        var problem = await response.BodyAsync();
        problem.GetProperty("field").GetString().Should().Be("fromRevision");
        problem.GetProperty("detail").GetString().Should().Contain("keeps changes after revision");
    }

    [Theory]
    [InlineData("/watch", "key")]
    [InlineData("/watch?key=a&prefix=b", "prefix")]
    [InlineData("/watch?key=a&fromRevision=0", "fromRevision")]
    [InlineData("/watch?key=a&prevValue=perhaps", "prevValue")]
    public async Task A_bad_watch_is_refused_naming_the_parameter(string path, string field)
    {
        var client = await _server.ReadyClientAsync();

        var response = await client.GetAsync(Url(path));

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.BodyAsync()).GetProperty("field").GetString().Should().Be(field);
    }
}
