using System.Net;
using System.Net.Sockets;
using System.Text;
using RaftKv.Client;

namespace RaftKv.Cli.Tests;

/// <summary>
/// A node that no longer keeps a watch's position (it restarted from a snapshot, or caught up by one while streaming)
/// is not the last word: the client resumes on the next node, and gives up only when every node has said so in turn.
/// Spoken to scripted nodes on loopback, each answering every watch the same way.
/// </summary>
public sealed class WatchResumeTests
{
    private const string Gone = """{"type":"urn:raftkv:problem:compacted","title":"Revision compacted","status":410,"detail":"revision 5 is compacted; the oldest kept is 90"}""";
    private const string Change = "id: 5.0\nevent: put\ndata: {\"type\":\"PUT\",\"key\":\"k1\",\"value\":\"v5\",\"revision\":5,\"prevValue\":null}\n\n";

    private static async Task Answer410(HttpListenerContext context)
    {
        var body = Encoding.UTF8.GetBytes(Gone);
        context.Response.StatusCode = 410;
        context.Response.ContentType = "application/problem+json";
        context.Response.ContentLength64 = body.Length;
        await context.Response.OutputStream.WriteAsync(body);
        context.Response.Close();
    }

    private static Func<HttpListenerContext, Task> Stream(params string[] frames) => async context =>
    {
        context.Response.StatusCode = 200;
        context.Response.ContentType = "text/event-stream";
        context.Response.SendChunked = true;
        foreach (var frame in frames)
        {
            var bytes = Encoding.UTF8.GetBytes(frame);
            await context.Response.OutputStream.WriteAsync(bytes);
            await context.Response.OutputStream.FlushAsync();
        }
        if (frames[^1].StartsWith("event: compacted", StringComparison.Ordinal))
        {
            context.Response.Close(); // the node ends the stream after saying so
        }
        // Otherwise the stream stays open, as a node's does, until the test ends.
    };

    private static RaftKvClient Client(params SseNode[] nodes) =>
        new(new RaftKvClientOptions { Endpoints = [.. nodes.Select(n => n.Address)], MaxAttempts = 3, RetryMaxDelay = TimeSpan.FromMilliseconds(50) });

    [Fact]
    public async Task A_node_that_answers_410_is_passed_over_for_one_that_still_has_the_position()
    {
        await using var restarted = SseNode.Start(Answer410);
        await using var keeping = SseNode.Start(Stream(": watching prefix k after revision 4\n\n", Change));
        using var client = Client(restarted, keeping);

        var first = await FirstChangeAsync(client);

        first.Should().Be(new WatchChange("5.0", "PUT", "k1", "v5", 5, null));
        restarted.Requests.Should().Be(1);
    }

    [Fact]
    public async Task A_stream_ended_by_a_compacted_event_resumes_on_another_node_from_the_same_position()
    {
        await using var behind = SseNode.Start(Stream(": watching prefix k after revision 4\n\n", "event: compacted\ndata: {\"compactedThrough\":90}\n\n"));
        await using var keeping = SseNode.Start(Stream(": watching prefix k after revision 4\n\n", Change));
        using var client = Client(behind, keeping);

        var first = await FirstChangeAsync(client);

        first.Revision.Should().Be(5);
        keeping.LastEventIds.Should().Equal(["4"], "it resumed after the position the first node started from");
    }

    [Fact]
    public async Task A_position_no_node_keeps_any_longer_is_reported_compacted()
    {
        await using var a = SseNode.Start(Answer410);
        await using var b = SseNode.Start(Stream(": watching prefix k after revision 4\n\n", "event: compacted\ndata: {\"compactedThrough\":90}\n\n"));
        using var client = Client(a, b);

        var act = () => FirstChangeAsync(client);

        await act.Should().ThrowAsync<WatchCompactedException>();
        (a.Requests + b.Requests).Should().BeLessThanOrEqualTo(3, "each node is asked about once, not in a loop");
    }

    [Fact]
    public async Task A_node_that_did_not_answer_is_asked_before_the_watch_gives_up()
    {
        // Two nodes say the position is gone; the third fails its first answer (a restart), then still has the position.
        await using var a = SseNode.Start(Answer410);
        var calls = 0;
        await using var flaky = SseNode.Start(async context =>
        {
            if (Interlocked.Increment(ref calls) == 1)
            {
                context.Response.StatusCode = 503;
                context.Response.Close();
                return;
            }
            await Stream(": watching prefix k after revision 4\n\n", Change)(context);
        });
        await using var c = SseNode.Start(Answer410);
        using var client = Client(a, flaky, c);

        var first = await FirstChangeAsync(client);

        first.Revision.Should().Be(5, "two answers of 410 out of three nodes are not every node");
        flaky.Requests.Should().Be(2);
    }

    private static async Task<WatchChange> FirstChangeAsync(RaftKvClient client)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await foreach (var change in client.WatchAsync("k", isPrefix: true, fromRevision: 5, cancellationToken: timeout.Token))
        {
            return change;
        }
        throw new InvalidOperationException("the watch ended without a change");
    }

    private sealed class SseNode : IAsyncDisposable
    {
        private readonly HttpListener _listener;
        private readonly Task _serving;
        private int _requests;

        private SseNode(HttpListener listener, Uri address, Func<HttpListenerContext, Task> answer)
        {
            _listener = listener;
            Address = address;
            _serving = Task.Run(() => ServeAsync(answer));
        }

        public Uri Address { get; }

        public int Requests => Volatile.Read(ref _requests);

        public List<string?> LastEventIds { get; } = [];

        public static SseNode Start(Func<HttpListenerContext, Task> answer)
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            var address = new Uri($"http://127.0.0.1:{port}/");
            var listener = new HttpListener();
            listener.Prefixes.Add(address.ToString());
            listener.Start();
            return new SseNode(listener, address, answer);
        }

        private async Task ServeAsync(Func<HttpListenerContext, Task> answer)
        {
            while (_listener.IsListening)
            {
                var context = await _listener.GetContextAsync();
                Interlocked.Increment(ref _requests);
                lock (LastEventIds)
                {
                    LastEventIds.Add(context.Request.Headers["Last-Event-ID"]);
                }
                _ = answer(context);
            }
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            _listener.Close();
            try
            {
                await _serving;
            }
            catch (Exception error) when (error is HttpListenerException or ObjectDisposedException)
            {
                // Stopped while waiting for the next request.
            }
        }
    }
}
