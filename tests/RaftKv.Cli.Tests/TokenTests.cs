using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using RaftKv.Testing.Processes;

namespace RaftKv.Cli.Tests;

/// <summary>
/// Client tokens on a real server: tokens made by raft-cli, a tokens file holding only their hashes, 401 without a valid
/// token, 403 when the role is too low, every role's routes, /health open, and raft-cli's --token.
/// </summary>
public sealed class TokenTests(TokenTests.Fixture fixture) : IClassFixture<TokenTests.Fixture>
{
    private readonly string _directory = fixture.Directory;
    private readonly Dictionary<string, string> _tokens = fixture.Tokens;
    private readonly LocalCluster _cluster = fixture.Cluster;

    /// <summary>One node with three tokens (read, write, admin), shared by the tests of this class.</summary>
    public sealed class Fixture : IAsyncLifetime
    {
        public string Directory { get; } = Path.Combine(Path.GetTempPath(), "raftkv-tokens-" + Guid.NewGuid().ToString("N")[..12]);

        public Dictionary<string, string> Tokens { get; } = [];

        public LocalCluster Cluster { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            System.IO.Directory.CreateDirectory(Directory);
            var lines = new List<string> { "# made by raft-cli token new" };
            foreach (var role in new[] { "read", "write", "admin" })
            {
                var made = await Cli.RunAsync("--output", "json", "token", "new", role + "-bot", "--role", role);
                made.ExitCode.Should().Be(0, made.ToString());
                var json = JsonDocument.Parse(made.Output).RootElement;
                Tokens[role] = json.GetProperty("token").GetString()!;
                lines.Add(json.GetProperty("line").GetString()!);
            }
            var file = Path.Combine(Directory, "tokens");
            await File.WriteAllLinesAsync(file, lines);
            Cluster = await LocalCluster.StartAsync(1, ["--tokens-file", file, "--open-status", "false"]);
        }

        public async Task DisposeAsync()
        {
            await Cluster.DisposeAsync();
            System.IO.Directory.Delete(Directory, recursive: true);
        }
    }

    [Fact]
    public void The_tokens_file_holds_hashes_never_tokens()
    {
        var file = File.ReadAllText(Path.Combine(_directory, "tokens"));

        file.Should().Contain("read-bot read sha256:").And.Contain("admin-bot admin sha256:");
        foreach (var token in _tokens.Values)
        {
            token.Should().StartWith("rkv_");
            file.Should().NotContain(token);
        }
    }

    [Theory]
    [InlineData("PUT", "/kv/k", null, 401)]
    [InlineData("PUT", "/kv/k", "read", 403)]
    [InlineData("PUT", "/kv/k", "write", 200)]
    [InlineData("PUT", "/kv/k", "admin", 200)]
    [InlineData("GET", "/kv/k", null, 401)]
    [InlineData("GET", "/kv/missing", "read", 404)]
    [InlineData("POST", "/command", "read", 403)]
    [InlineData("GET", "/cluster/members", null, 401)]
    [InlineData("GET", "/cluster/members", "read", 200)]
    [InlineData("POST", "/cluster/members/n1/promote", "write", 403)]
    [InlineData("POST", "/cluster/members/n1/promote", "admin", 400)]
    [InlineData("GET", "/cluster/snapshot", "write", 403)]
    [InlineData("GET", "/cluster/snapshot", "admin", 200)]
    [InlineData("GET", "/status", null, 401)]
    [InlineData("GET", "/status", "read", 200)]
    [InlineData("GET", "/health", null, 200)]
    [InlineData("GET", "/metrics", null, 200)]
    public async Task Each_route_needs_its_role(string method, string path, string? role, int expected)
    {
        var node = _cluster.Nodes[0];
        await WaitForLeaderAsync(node);
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(path, UriKind.Relative));
        if (role is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _tokens[role]);
        }
        request.Content = path == "/command" ? JsonContent.Create(new { type = "SET", key = "k", value = "v" }) : method == "PUT" ? new StringContent("v") : null;

        using var response = await node.Client.SendAsync(request);

        ((int)response.StatusCode).Should().Be(expected, await response.Content.ReadAsStringAsync());
        if (expected is 401 or 403)
        {
            response.Content.Headers.ContentType!.MediaType.Should().Be("application/problem+json");
            var problem = await response.Content.ReadFromJsonAsync<JsonElement>();
            problem.GetProperty("field").GetString().Should().Be("Authorization");
        }
        if (expected == 401)
        {
            response.Headers.WwwAuthenticate.ToString().Should().Be("Bearer");
        }
    }

    [Fact]
    public async Task A_wrong_token_is_refused_and_no_token_is_ever_logged()
    {
        var node = _cluster.Nodes[0];
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/kv/k", UriKind.Relative));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _tokens["admin"] + "x");

        using var response = await node.Client.SendAsync(request);

        response.StatusCode.Should().Be(HttpStatusCode.Unauthorized);
        (await response.Content.ReadAsStringAsync()).Should().Contain("the token is not valid");
        var log = node.Tail(10_000);
        foreach (var token in _tokens.Values)
        {
            log.Should().NotContain(token);
        }
    }

    [Fact]
    public async Task Raft_cli_sends_its_token_and_says_why_it_was_refused()
    {
        var endpoint = _cluster.Nodes[0].BaseAddress.ToString();
        await WaitForLeaderAsync(_cluster.Nodes[0]);

        var none = await Cli.RunAsync("--endpoints", endpoint, "set", "a", "1");
        var reader = await Cli.RunAsync("--endpoints", endpoint, "--token", _tokens["read"], "set", "a", "1");
        var writer = await Cli.RunAsync("--endpoints", endpoint, "--token", _tokens["write"], "set", "a", "1");
        var read = await Cli.RunAsync("--endpoints", endpoint, "--token", _tokens["read"], "get", "a");

        none.ExitCode.Should().Be(7, none.ToString());
        none.Error.Should().Contain("401").And.Contain("a bearer token is needed");
        reader.ExitCode.Should().Be(7, reader.ToString());
        reader.Error.Should().Contain("403").And.Contain("'read-bot' has the role read; this needs write");
        writer.ExitCode.Should().Be(0, writer.ToString());
        read.Output.Should().Be("1");
    }

    [Fact]
    public async Task A_bad_tokens_file_stops_the_node_with_one_line()
    {
        var file = Path.Combine(_directory, "bad-tokens");
        await File.WriteAllTextAsync(file, "someone superuser sha256:abc\n");
        using var process = Process.Start(new ProcessStartInfo("dotnet", ["exec", Paths.ServerDll, "--tokens-file", file, "--data-dir", Path.Combine(_directory, "d")])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        })!;
        try
        {
            var errors = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();

            process.ExitCode.Should().Be(2);
            errors.Should().Contain("raftkv: RaftKv:Auth:TokensFile:").And.Contain("line 1");
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        }
    }

    private static async Task WaitForLeaderAsync(ServerProcess node)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/health/ready", UriKind.Relative));
            using var response = await node.Client.SendAsync(request);
            if (response.IsSuccessStatusCode)
            {
                return;
            }
            await Task.Delay(100);
        }
        throw new TimeoutException("the node never became ready");
    }
}
