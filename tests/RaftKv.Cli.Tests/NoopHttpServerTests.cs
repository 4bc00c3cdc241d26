using System.Net;
using System.Net.Sockets;
using System.Text;
using RaftKv.Client;

namespace RaftKv.Cli.Tests;

/// <summary>The benchmark's do-nothing baseline endpoint, spoken to over HTTP/1.1 by HttpClient and by hand.</summary>
public sealed class NoopHttpServerTests
{
    // Written out here rather than taken from the server, so that a changed body fails the test.
    private const string CommandJson = """{"ok":true,"value":"x","found":true,"version":1,"index":1,"term":1,"leader":"n1"}""";
    private const string StatusJson = """{"nodeId":"n1","role":"Leader","term":1,"leader":"n1","commit":1,"applied":1,"lastIndex":1,"firstIndex":1,"snapshotIndex":0,"voters":["n1"],"storage":{"failed":false,"walBytes":0,"segments":0,"pendingProposals":0,"droppedInboxMessages":0},"peers":[]}""";

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Listens_on_loopback_on_a_port_the_os_chose()
    {
        await using var server = NoopHttpServer.Start();

        server.Address.Host.Should().Be("127.0.0.1");
        server.Address.Scheme.Should().Be("http");
        server.Address.Port.Should().BeGreaterThan(0);
    }

    [Fact]
    public async Task Keep_alive_posts_get_the_fixed_command_answer_over_one_connection()
    {
        await using var server = NoopHttpServer.Start();
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 1 };
        using var http = new HttpClient(handler) { BaseAddress = server.Address, Timeout = Patience };
        // Small, larger than the server's 16 KiB buffer, and empty: each body must be read exactly, or the next request breaks.
        string[] bodies = ["""{"type":"SET","key":"k","value":"v"}""", new string('x', 40_000), ""];

        foreach (var body in bodies)
        {
            using var content = new StringContent(body, Encoding.UTF8, "application/json");
            using var response = await http.PostAsync(new Uri("/command", UriKind.Relative), content);

            response.StatusCode.Should().Be(HttpStatusCode.OK);
            response.Version.Should().Be(HttpVersion.Version11);
            (await response.Content.ReadAsStringAsync()).Should().Be(CommandJson);
            response.Content.Headers.ContentType!.MediaType.Should().Be("application/json");
            response.Content.Headers.ContentLength.Should().Be(Encoding.UTF8.GetByteCount(CommandJson));
            response.Headers.GetValues("X-Raft-Leader").Should().Equal("n1");
            response.Headers.ConnectionClose.Should().NotBe(true);
        }
        server.ConnectionsAccepted.Should().Be(1, "the three requests share one kept-alive connection");
    }

    [Fact]
    public async Task Expect_100_continue_gets_its_interim_answer()
    {
        await using var server = NoopHttpServer.Start();
        // The client would wait 30 s for the 100 before sending the body anyway: longer than the request may take.
        using var handler = new SocketsHttpHandler { Expect100ContinueTimeout = TimeSpan.FromSeconds(30) };
        using var http = new HttpClient(handler) { BaseAddress = server.Address, Timeout = Patience };
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("/command", UriKind.Relative))
        {
            Content = new StringContent(new string('y', 1000), Encoding.UTF8, "application/json"),
        };
        request.Headers.ExpectContinue = true;

        using var response = await http.SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        (await response.Content.ReadAsStringAsync()).Should().Be(CommandJson);
    }

    [Fact]
    public async Task Status_is_the_fixed_status_of_a_leader()
    {
        await using var server = NoopHttpServer.Start();
        using var http = new HttpClient(new SocketsHttpHandler()) { BaseAddress = server.Address, Timeout = Patience };

        using var response = await http.GetAsync(new Uri("/status", UriKind.Relative));

        response.StatusCode.Should().Be(HttpStatusCode.OK);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/json");
        (await response.Content.ReadAsStringAsync()).Should().Be(StatusJson);
    }

    [Theory]
    [InlineData("GET", "/other")]
    [InlineData("GET", "/command")]
    [InlineData("POST", "/status")]
    [InlineData("GET", "/")]
    public async Task Anything_else_is_404_with_an_empty_body(string method, string path)
    {
        await using var server = NoopHttpServer.Start();
        using var http = new HttpClient(new SocketsHttpHandler()) { BaseAddress = server.Address, Timeout = Patience };
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative));

        using var response = await http.SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.NotFound);
        response.Content.Headers.ContentLength.Should().Be(0);
        (await response.Content.ReadAsByteArrayAsync()).Should().BeEmpty();
        response.Headers.Contains("X-Raft-Leader").Should().BeFalse();
    }

    [Fact]
    public async Task Two_requests_in_one_write_are_both_answered_in_order_and_connection_close_is_honoured()
    {
        await using var server = NoopHttpServer.Start();
        using var socket = await ConnectAsync(server);

        await SendAsync(socket,
            "POST /command HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\":\"bcd\"}"
            + "GET /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        var answer = await ReceiveUntilClosedAsync(socket);

        var second = answer.IndexOf("HTTP/1.1 200 OK\r\n", 1, StringComparison.Ordinal);
        answer.Should().StartWith("HTTP/1.1 200 OK\r\n");
        second.Should().BePositive("both requests are answered: " + answer);
        var (firstHead, firstBody) = Split(answer[..second]);
        var (secondHead, secondBody) = Split(answer[second..]);
        firstBody.Should().Be(CommandJson);
        firstHead.Should().Contain("\r\nX-Raft-Leader: n1\r\n").And.Contain($"\r\nContent-Length: {CommandJson.Length}\r\n")
            .And.NotContain("Connection: close");
        secondBody.Should().Be(StatusJson, "the connection closes right after the second answer, with nothing after it");
        secondHead.Should().Contain("\r\nConnection: close\r\n").And.Contain($"\r\nContent-Length: {StatusJson.Length}\r\n");
    }

    [Fact]
    public async Task A_request_split_across_writes_is_answered_once_it_is_whole()
    {
        await using var server = NoopHttpServer.Start();
        using var socket = await ConnectAsync(server);

        await SendAsync(socket, "POST /command HTTP/1.1\r\nHost: x\r\nConn");
        await Task.Delay(50);
        await SendAsync(socket, "ection: close\r\nContent-Length: 4\r\n\r\nab");
        await Task.Delay(50);
        await SendAsync(socket, "cd");
        var answer = await ReceiveUntilClosedAsync(socket);

        answer.Should().StartWith("HTTP/1.1 200 OK\r\n").And.EndWith("\r\n\r\n" + CommandJson);
    }

    [Fact]
    public async Task A_chunked_request_is_refused_with_411_and_the_connection_closed()
    {
        await using var server = NoopHttpServer.Start();
        using var socket = await ConnectAsync(server);

        await SendAsync(socket, "POST /command HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        var answer = await ReceiveUntilClosedAsync(socket);

        answer.Should().StartWith("HTTP/1.1 411 Length Required\r\n").And.Contain("\r\nConnection: close\r\n").And.EndWith("Content-Length: 0\r\nConnection: close\r\n\r\n");
    }

    [Fact]
    public async Task Headers_over_16_KiB_get_431_and_the_connection_closed()
    {
        await using var server = NoopHttpServer.Start();
        using var socket = await ConnectAsync(server);

        await SendAsync(socket, "GET /status HTTP/1.1\r\nHost: x\r\nX-Padding: " + new string('p', 20_000) + "\r\n\r\n");
        var answer = await ReceiveUntilClosedAsync(socket);

        answer.Should().StartWith("HTTP/1.1 431 ");
    }

    [Fact]
    public async Task A_malformed_request_line_gets_400_and_the_connection_closed()
    {
        await using var server = NoopHttpServer.Start();
        using var socket = await ConnectAsync(server);

        await SendAsync(socket, "NONSENSE\r\n\r\n");
        var answer = await ReceiveUntilClosedAsync(socket);

        answer.Should().StartWith("HTTP/1.1 400 Bad Request\r\n");
    }

    [Fact]
    public async Task A_connection_over_the_limit_is_closed_and_a_freed_place_is_taken_again()
    {
        await using var server = NoopHttpServer.Start(maxConnections: 2);
        using var first = await ConnectAsync(server);
        using var second = await ConnectAsync(server);
        (await RoundTripAsync(first)).Should().StartWith("HTTP/1.1 404 ");
        (await RoundTripAsync(second)).Should().StartWith("HTTP/1.1 404 ");

        using var third = await ConnectAsync(server);
        var refused = await ReceiveOrResetAsync(third);
        first.Dispose();
        var fourth = await WaitForAConnectionServedAsync(server);

        refused.Should().Be(0, "the third connection is closed unanswered");
        server.ConnectionsAccepted.Should().Be(3, "the first two, then one after the first closed");
        (await RoundTripAsync(second)).Should().StartWith("HTTP/1.1 404 ", "the connections within the limit are untouched");
        fourth.Dispose();
    }

    [Fact]
    public async Task Disposing_closes_open_connections()
    {
        var server = NoopHttpServer.Start();
        using var socket = await ConnectAsync(server);
        await SendAsync(socket, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
        var buffer = new byte[1024];
        var received = await socket.ReceiveAsync(buffer, SocketFlags.None);
        Encoding.ASCII.GetString(buffer, 0, received).Should().StartWith("HTTP/1.1 404 Not Found\r\n");

        await server.DisposeAsync().AsTask().WaitAsync(Patience);

        using var timeout = new CancellationTokenSource(Patience);
        var afterDispose = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
        afterDispose.Should().Be(0, "the server closed the kept-alive connection");
    }

    [Fact]
    public async Task The_raftkv_client_finds_the_leader_and_writes_through_it()
    {
        await using var server = NoopHttpServer.Start();
        using var client = new RaftKvClient(new RaftKvClientOptions { Endpoints = [server.Address], MaxAttempts = 1, Timeout = Patience, ClientId = "noop-test" });

        var statuses = await client.ClusterStatusAsync();
        var written = await client.SetAsync("k", "v");

        statuses.Should().ContainSingle().Which.Status!.Role.Should().Be("Leader");
        client.KnownLeader.Should().Be(server.Address);
        written.Ok.Should().BeTrue();
        written.Leader.Should().Be("n1");
    }

    /// <summary>A GET /other on a kept-alive connection, and its answer (small enough to come in one read).</summary>
    private static async Task<string> RoundTripAsync(Socket socket)
    {
        await SendAsync(socket, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
        using var timeout = new CancellationTokenSource(Patience);
        var buffer = new byte[1024];
        var received = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
        return Encoding.ASCII.GetString(buffer, 0, received);
    }

    /// <summary>What one read returns: 0 once the server closed the connection (a reset counts as closed too).</summary>
    private static async Task<int> ReceiveOrResetAsync(Socket socket)
    {
        using var timeout = new CancellationTokenSource(Patience);
        try
        {
            return await socket.ReceiveAsync(new byte[1024], SocketFlags.None, timeout.Token);
        }
        catch (SocketException error) when (error.SocketErrorCode == SocketError.ConnectionReset)
        {
            return 0;
        }
    }

    /// <summary>Connects until a connection is served: a freed place is taken once the server has seen the close.</summary>
    private static async Task<Socket> WaitForAConnectionServedAsync(NoopHttpServer server)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            var socket = await ConnectAsync(server);
            try
            {
                var answer = await RoundTripAsync(socket);
                if (answer.Length > 0)
                {
                    return socket;
                }
            }
            catch (SocketException error) when (error.SocketErrorCode == SocketError.ConnectionReset)
            {
            }
            socket.Dispose();
            DateTime.UtcNow.Should().BeBefore(deadline, "a place frees up when a connection closes");
            await Task.Delay(20);
        }
    }

    private static async Task<Socket> ConnectAsync(NoopHttpServer server)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, server.Address.Port);
        return socket;
    }

    private static async Task SendAsync(Socket socket, string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text);
        var sent = 0;
        while (sent < bytes.Length)
        {
            sent += await socket.SendAsync(bytes.AsMemory(sent), SocketFlags.None);
        }
    }

    /// <summary>Everything the server sends until it closes the connection (failing if it does not within 10 s).</summary>
    private static async Task<string> ReceiveUntilClosedAsync(Socket socket)
    {
        using var timeout = new CancellationTokenSource(Patience);
        using var received = new MemoryStream();
        var buffer = new byte[4096];
        int count;
        while ((count = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0)
        {
            received.Write(buffer, 0, count);
        }
        return Encoding.ASCII.GetString(received.ToArray());
    }

    private static (string Head, string Body) Split(string response)
    {
        var end = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        end.Should().BePositive("a response has a head: " + response);
        return (response[..(end + 2)], response[(end + 4)..]);
    }
}
