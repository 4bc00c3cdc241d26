using System.Globalization;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Grpc.Core;
using Grpc.Net.Client;
using RaftKv.Contracts;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;
using Proto = RaftKv.Transport.Protos;

namespace RaftKv.Cli.Tests;

/// <summary>
/// A three-node cluster with TLS on both ports, from certificates made by raft-cli certs: clients speak HTTPS and trust
/// only the cluster CA; peers speak mutual TLS. A process that is not a member gets no connection without a certificate
/// of the cluster CA, and with a member's certificate it can speak only for that member; the cluster's term and data do
/// not change.
/// </summary>
public sealed class TlsTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const ulong ForgedTerm = 1_000;
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "raftkv-tls-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly List<ServerProcess> _nodes = [];
    private string Certs => Path.Combine(_directory, "certs");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_directory);
        (await Cli.RunAsync("certs", "init", "--dir", Certs)).ExitCode.Should().Be(0);
        for (var i = 1; i <= 3; i++)
        {
            var node = await Cli.RunAsync("certs", "node", $"n{i}", "--host", "127.0.0.1", "--dir", Certs);
            node.ExitCode.Should().Be(0, node.ToString());
        }
        var ca = TlsTrust.LoadCa(Path.Combine(Certs, "ca.pem"));
        var placement = new ServerProcess.Placement("127.0.0.1", [], () => new SocketsHttpHandler
        {
            SslOptions = { RemoteCertificateValidationCallback = TlsTrust.ServerValidator(ca) },
        }, "https");
        var ports = FreePorts.Take(6);
        var peers = string.Join(',', Enumerable.Range(0, 3).Select(i => $"n{i + 1}=https://127.0.0.1:{ports[3 + i]}"));
        for (var i = 0; i < 3; i++)
        {
            var id = $"n{i + 1}";
            var data = Path.Combine(_directory, id);
            _nodes.Add(ServerProcess.Start(id, ports[i], ports[3 + i], data,
            [
                "--node-id", id, "--peers", peers, "--http", $"https://127.0.0.1:{ports[i]}", "--data-dir", data,
                "--cert-file", Path.Combine(Certs, id + ".pem"), "--key-file", Path.Combine(Certs, id + "-key.pem"), "--ca-file", Path.Combine(Certs, "ca.pem"),
            ], placement));
        }
        foreach (var node in _nodes)
        {
            await node.WaitUntilServingAsync(TimeSpan.FromSeconds(30));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.DisposeAsync();
        }
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Clients_speak_https_trusting_only_the_cluster_ca()
    {
        var endpoints = string.Join(',', _nodes.Select(n => n.BaseAddress.ToString().TrimEnd('/')));
        var ca = Path.Combine(Certs, "ca.pem");

        var set = await Cli.RunAsync("--endpoints", endpoints, "--cacert", ca, "set", "k", "v");
        var get = await Cli.RunAsync("--endpoints", endpoints, "--cacert", ca, "get", "k");
        var untrusted = await Cli.RunAsync("--endpoints", endpoints, "--timeout", "3", "get", "k");

        set.ExitCode.Should().Be(0, set.ToString());
        get.Output.Should().Be("v");
        untrusted.ExitCode.Should().Be(5, "without the cluster CA no node's certificate is trusted: {0}", untrusted);
        endpoints.Should().StartWith("https://");
    }

    [Fact]
    public async Task A_process_without_a_member_certificate_gets_no_peer_connection_and_a_member_certificate_speaks_only_for_its_member()
    {
        var target = _nodes[0];
        // The nodes serve before they have elected a leader: the write is resent (same session, same sequence: applied
        // once) while the answer is 503, for at most 15 s.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            using var written = await LocalCluster.SetInSessionAsync(target, "k", "v", "tls-test", 1);
            if (written.StatusCode != System.Net.HttpStatusCode.ServiceUnavailable || clock.Elapsed > TimeSpan.FromSeconds(15))
            {
                written.EnsureSuccessStatusCode();
                break;
            }
            await Task.Delay(100);
        }
        var members = JsonDocument.Parse(await target.Client.GetStringAsync(new Uri("/cluster/members", UriKind.Relative))).RootElement;
        var clusterId = members.GetProperty("clusterId").GetString()!;
        var before = (await target.StatusAsync()).GetProperty("term").GetUInt64();
        (await Cli.RunAsync("certs", "init", "--dir", Path.Combine(_directory, "other"))).ExitCode.Should().Be(0);
        (await Cli.RunAsync("certs", "node", "n9", "--host", "127.0.0.1", "--dir", Path.Combine(_directory, "other"))).ExitCode.Should().Be(0);

        var attempts = new (string What, X509Certificate2? Certificate, string Claims)[]
        {
            ("no certificate", null, "n9"),
            ("a certificate of another CA", Load(Path.Combine(_directory, "other"), "n9"), "n9"),
            ("n3's own certificate, speaking for n9", Load(Certs, "n3"), "n9"),
            ("n3's own certificate, speaking for n2", Load(Certs, "n3"), "n2"),
        };
        foreach (var (what, certificate, claims) in attempts)
        {
            var refusal = await AttackAsync(Certs, target, clusterId, certificate, claims);
            output.WriteLine($"{what}: {refusal}");
            refusal.Should().NotBe("ACCEPTED", what);
        }

        await Task.Delay(500);
        var after = await target.StatusAsync();
        after.GetProperty("term").GetUInt64().Should().BeLessThan(ForgedTerm).And.BeGreaterThanOrEqualTo(before);
        (await LocalCluster.GetAsync(target, "k")).GetProperty("value").GetString().Should().Be("v");
    }

    private static X509Certificate2 Load(string folder, string name) =>
        X509Certificate2.CreateFromPemFile(Path.Combine(folder, name + ".pem"), Path.Combine(folder, name + "-key.pem"));

    /// <summary>An AppendEntries of a much higher term over the peer port, as <paramref name="claims"/>, with this certificate.</summary>
    private static async Task<string> AttackAsync(string certs, ServerProcess target, string clusterId, X509Certificate2? certificate, string claims)
    {
        using var handler = new SocketsHttpHandler
        {
            SslOptions =
            {
                // The cluster CA's certificate is public: the attacker can check whom it talks to, like anyone.
                RemoteCertificateValidationCallback = TlsTrust.ServerValidator(TlsTrust.LoadCa(Path.Combine(certs, "ca.pem"))),
                ClientCertificates = certificate is null ? null : [certificate],
            },
        };
        using var channel = GrpcChannel.ForAddress($"https://127.0.0.1:{target.PeerPort}", new GrpcChannelOptions { HttpHandler = handler });
        var client = new Proto.RaftPeer.RaftPeerClient(channel);
        var headers = new Metadata { { "raftkv-cluster", clusterId }, { "raftkv-incarnation", "00000000deadbeef" }, { "raftkv-from", claims } };
        try
        {
            using var stream = client.Stream(headers);
            var batch = new Proto.MessageBatch();
            batch.Messages.Add(new Proto.PeerMessage
            {
                From = ulong.Parse(claims[1..], CultureInfo.InvariantCulture),
                To = 1,
                Term = ForgedTerm,
                AppendEntries = new Proto.AppendEntries { LeaderCommit = 1 },
            });
            await stream.RequestStream.WriteAsync(batch);
            await stream.RequestStream.CompleteAsync();
            await stream.ResponseAsync;
            return "ACCEPTED";
        }
        catch (RpcException refused)
        {
            return $"{refused.StatusCode}: {refused.Status.Detail}";
        }
        catch (Exception refused) when (refused is HttpRequestException or IOException or InvalidOperationException or OperationCanceledException)
        {
            // The TLS handshake itself was refused; the client library reports it in several ways, before or as the call starts.
            return $"no connection: {refused.GetType().Name}: {refused.Message}";
        }
    }
}
