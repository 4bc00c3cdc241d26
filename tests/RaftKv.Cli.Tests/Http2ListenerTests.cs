using System.Net;
using System.Text;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cli.Tests;

/// <summary>
/// A node with a second client listener that speaks HTTP/2 without TLS (--listen-http2): raft-cli --http2 and the .NET
/// client multiplex their requests over it; it serves the client API and nothing else, and HTTP/1.1 stays on the client port.
/// </summary>
public sealed class Http2ListenerTests(ITestOutputHelper output)
{
    [Fact]
    public async Task The_http2_listener_serves_the_client_api_over_http2_and_only_that()
    {
        var ports = FreePorts.Take(3);
        var (http, peer, http2) = (ports[0], ports[1], ports[2]);
        var directory = Path.Combine(Path.GetTempPath(), "raftkv-h2-" + Guid.NewGuid().ToString("N")[..8]);
        await using var server = ServerProcess.Start("n1", http, peer, Path.Combine(directory, "data"),
        [
            "--http", $"http://127.0.0.1:{http}", "--peer", $"http://127.0.0.1:{peer}", "--listen-http2", $"http://127.0.0.1:{http2}",
            "--data-dir", Path.Combine(directory, "data"),
        ]);
        await server.WaitUntilServingAsync(TimeSpan.FromSeconds(30));
        var h2Endpoint = $"http://127.0.0.1:{http2}";

        // raft-cli (the .NET client) over the HTTP/2 listener: writes, reads, a listing and a watch.
        var watch = Cli.RunAsync("--http2", "-e", h2Endpoint, "watch", "h2/", "--prefix", "--count", "2");
        await Task.Delay(TimeSpan.FromMilliseconds(500)); // the watch starts from the revision it finds
        var set = await Cli.RunAsync("--http2", "-e", h2Endpoint, "set", "h2/a", "over-h2");
        var set2 = await Cli.RunAsync("--http2", "-e", h2Endpoint, "set", "h2/b", "again");
        var get = await Cli.RunAsync("--http2", "-e", h2Endpoint, "get", "h2/a");
        var list = await Cli.RunAsync("--http2", "-e", h2Endpoint, "list", "h2/");
        var watched = await watch;
        var bench = await Cli.RunAsync("--http2", "-e", h2Endpoint, "--output", "json", "benchmark", "--operations", "300", "--clients", "16");
        output.WriteLine($"{set}\n{get}\n{list}\n{watched}\n{bench}");

        set.ExitCode.Should().Be(0, set.ToString());
        set2.ExitCode.Should().Be(0, set2.ToString());
        get.Output.Should().Be("over-h2");
        list.Output.Should().Contain("h2/a").And.Contain("h2/b");
        watched.ExitCode.Should().Be(0, watched.ToString());
        watched.Output.Split('\n').Select(line => line[..line.LastIndexOf(" @", StringComparison.Ordinal)]).Should().Equal("PUT h2/a over-h2", "PUT h2/b again");
        bench.ExitCode.Should().Be(0, bench.ToString());
        using (var report = System.Text.Json.JsonDocument.Parse(bench.Output))
        {
            report.RootElement.GetProperty("errors").GetInt64().Should().Be(0);
            report.RootElement.GetProperty("operations").GetInt64().Should().Be(300);
        }

        // What travels is HTTP/2; the peer service is not served there; HTTP/1.1 is not spoken there.
        using var h2c = new HttpClient { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using (var command = await h2c.PostAsync(new Uri($"{h2Endpoint}/command"), new StringContent("""{"type":"GET","key":"h2/a"}""", Encoding.UTF8, "application/json")))
        {
            command.StatusCode.Should().Be(HttpStatusCode.OK);
            command.Version.Should().Be(HttpVersion.Version20);
            (await command.Content.ReadAsStringAsync()).Should().Contain("\"value\":\"over-h2\"");
        }
        using (var peerRoute = await h2c.PostAsync(new Uri($"{h2Endpoint}/raftkv.peer.v1.RaftPeer/Hello"), new ByteArrayContent(new byte[5])))
        {
            peerRoute.StatusCode.Should().Be(HttpStatusCode.NotFound, "the peer service is served on the peer port only");
        }
        using var http1 = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using (var spokenHttp1 = await http1.GetAsync(new Uri($"{h2Endpoint}/status")))
        {
            // Kestrel answers an HTTP/1.x request on an HTTP/2-only listener with a 400 and closes the connection.
            spokenHttp1.StatusCode.Should().Be(HttpStatusCode.BadRequest, "the listener speaks HTTP/2 alone");
            spokenHttp1.Version.Should().Be(HttpVersion.Version11);
        }
        using (var onClientPort = await http1.GetAsync(new Uri($"http://127.0.0.1:{http}/status")))
        {
            onClientPort.StatusCode.Should().Be(HttpStatusCode.OK);
            onClientPort.Version.Should().Be(HttpVersion.Version11, "the client port stays HTTP/1.1");
        }
        File.ReadAllText(server.LogPath).Should().Contain($"also serves clients over HTTP/2 without TLS (prior knowledge) at http://127.0.0.1:{http2}/");
    }

    [Fact]
    public async Task A_cleartext_http2_listener_beside_tls_is_refused_at_start()
    {
        var ports = FreePorts.Take(3);
        var directory = Path.Combine(Path.GetTempPath(), "raftkv-h2-" + Guid.NewGuid().ToString("N")[..8]);
        var security = LocalCluster.Security.Create(Path.Combine(directory, "security"), 1, lab: null);
        await using var server = ServerProcess.Start("n1", ports[0], ports[1], Path.Combine(directory, "data"),
        [
            "--http", $"https://127.0.0.1:{ports[0]}", "--peer", $"https://127.0.0.1:{ports[1]}", "--listen-http2", $"http://127.0.0.1:{ports[2]}",
            .. security.NodeArguments("n1"), .. security.ArgumentsFor,
            "--data-dir", Path.Combine(directory, "data"),
        ]);

        var exitCode = await server.WaitForExitAsync(TimeSpan.FromSeconds(30));

        exitCode.Should().Be(2, "bad settings stop the node before anything listens");
        File.ReadAllText(server.LogPath).Should().Contain("RaftKv:Node:ListenHttp2: 'http://127.0.0.1:" + ports[2].ToString(System.Globalization.CultureInfo.InvariantCulture) + "' is a cleartext listener; with TLS on");
    }
}
