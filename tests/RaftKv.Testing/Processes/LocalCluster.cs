using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace RaftKv.Testing.Processes;

/// <summary>N server processes on loopback, each with its own ports and data directory under one temporary folder.</summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private readonly List<ServerProcess> _nodes = [];

    private LocalCluster(string directory, Faults.NetworkLab? lab, IReadOnlyList<string> extraArguments, string? serverDll, HostNames names)
    {
        Directory = directory;
        Lab = lab;
        _extraArguments = extraArguments;
        _serverDll = serverDll;
        _names = names;
    }

    private readonly HostNames _names;

    /// <summary>The name every node slot's URLs use: n1 is raftkv-1 (<see cref="HostNames.PerNode"/>).</summary>
    public static string HostNameOf(int slot) => "raftkv-" + (slot + 1).ToString(CultureInfo.InvariantCulture);

    private string HostsFile => Path.Combine(Directory, "hosts");

    private readonly IReadOnlyList<string> _extraArguments;
    private readonly string? _serverDll;

    public string Directory { get; }

    /// <summary>The private network the nodes run in, or null when they run on loopback.</summary>
    public Faults.NetworkLab? Lab { get; }

    public IReadOnlyList<Uri> Endpoints => [.. _nodes.Select(n => n.BaseAddress)];

    public IReadOnlyList<ServerProcess> Nodes => _nodes;

    public ServerProcess this[string nodeId] => _nodes.Single(n => n.NodeId == nodeId);

    /// <summary>
    /// Starts <paramref name="size"/> nodes (n1…nN) and waits until every one serves /health: on loopback, or each in its
    /// own namespace of <paramref name="lab"/> (which the cluster then owns and removes). <paramref name="spares"/> slots are kept
    /// for nodes that may join later (n{size+1}, …): their addresses are fixed now, so that clients can list them from the
    /// start; <see cref="StartSpareAsync"/> starts the next one. In a lab each needs its own namespace.
    /// <paramref name="names"/> (on loopback only): what the nodes' URLs and the clients name instead of 127.0.0.1, as a
    /// container platform's DNS names are used.
    /// </summary>
    public static async Task<LocalCluster> StartAsync(int size, IEnumerable<string>? extraArguments = null, Faults.NetworkLab? lab = null,
        string? serverDll = null, int spares = 0, bool secure = false, HostNames names = HostNames.Addresses)
    {
        if (names != HostNames.Addresses && (lab is not null || secure))
        {
            throw new NotSupportedException("host names run on loopback, without TLS");
        }
        var directory = Path.Combine(Path.GetTempPath(), "raftkv-cluster-" + Guid.NewGuid().ToString("N")[..12]);
        var security = secure ? Security.Create(Path.Combine(directory, "security"), size + spares, lab) : null;
        var cluster = new LocalCluster(directory, lab, [.. extraArguments ?? [], .. security?.ArgumentsFor ?? []], serverDll, names) { Secured = security };
        extraArguments = cluster._extraArguments;
        var all = size + spares;
        var taken = lab is null ? FreePorts.Take(2 * all) : [.. Enumerable.Repeat(8080, all), .. Enumerable.Repeat(9080, all)];
        int[] ports = [.. taken[..size], .. taken[all..(all + size)]];
        string Host(int i) => lab is not null ? lab.Address(i) : names switch
        {
            HostNames.Localhost => "localhost",
            HostNames.PerNode => HostNameOf(i),
            _ => "127.0.0.1",
        };
        if (names == HostNames.PerNode)
        {
            // The nodes' own /etc/hosts (see PlacementOf): every slot's name is 127.0.0.1.
            System.IO.Directory.CreateDirectory(directory);
            File.WriteAllText(cluster.HostsFile, "127.0.0.1 localhost\n::1 localhost\n"
                + string.Concat(Enumerable.Range(0, size + spares).Select(i => $"127.0.0.1 {HostNameOf(i)}\n")));
        }
        for (var j = 0; j < spares; j++)
        {
            var slot = size + j;
            cluster._spares.Enqueue(new Spare("n" + (slot + 1).ToString(CultureInfo.InvariantCulture), slot, Host(slot), taken[slot], taken[all + slot]));
        }
        var scheme = security is null ? "http" : "https";
        cluster.SpareEndpoints = [.. cluster._spares.Select(spare => new Uri($"{scheme}://{spare.Host}:{spare.HttpPort}/"))];
        var peers = string.Join(',', Enumerable.Range(0, size).Select(i => $"n{i + 1}={scheme}://{Host(i)}:{ports[size + i]}"));
        try
        {
            for (var i = 0; i < size; i++)
            {
                var id = "n" + (i + 1).ToString(CultureInfo.InvariantCulture);
                var node = i;
                cluster._nodes.Add(ServerProcess.Start(id, ports[i], ports[size + i], Path.Combine(cluster.Directory, id),
                [
                    "--node-id", id,
                    "--peers", peers,
                    "--http", $"{scheme}://{Host(i)}:{ports[i]}",
                    "--data-dir", Path.Combine(cluster.Directory, id),
                    .. security?.NodeArguments(id) ?? [],
                    .. extraArguments ?? [],
                ], cluster.PlacementOf(i), serverDll));
            }
            foreach (var node in cluster._nodes)
            {
                await node.WaitUntilServingAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            }
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Waits until the running nodes agree on one leader; returns it. <paramref name="pollEvery"/> (50 ms by default) is
    /// how long it waits between rounds of /status: a cluster started with a client rate limit needs rounds slower than its refill.</summary>
    public async Task<ServerProcess> WaitForLeaderAsync(TimeSpan within, IEnumerable<ServerProcess>? among = null, TimeSpan? pollEvery = null)
    {
        var nodes = (among ?? _nodes).Where(n => !n.HasExited).ToList();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < within)
        {
            var leaders = new List<string?>();
            foreach (var node in nodes)
            {
                try
                {
                    var status = await node.StatusAsync().ConfigureAwait(false);
                    leaders.Add(status.TryGetProperty("leader", out var leader) ? leader.GetString() : null);
                }
                catch (HttpRequestException)
                {
                    leaders.Add(null);
                }
            }
            if (leaders.Count > 0 && leaders[0] is { } agreed && leaders.All(l => l == agreed) && nodes.Any(n => n.NodeId == agreed))
            {
                return nodes.Single(n => n.NodeId == agreed);
            }
            await Task.Delay(pollEvery ?? TimeSpan.FromMilliseconds(50)).ConfigureAwait(false);
        }
        throw new TimeoutException("no agreed leader within " + within + ": " + string.Join(" | ", nodes.Select(n => n.NodeId + ": " + n.Tail(5))));
    }

    /// <summary>Replaces a node that exited with the same node restarted from its data directory.</summary>
    public Task<ServerProcess> RestartAsync(ServerProcess node) => RestartWithArgumentsAsync(node, []);

    /// <summary>Restarts a node that exited with more arguments (a later restart of the returned node keeps them).</summary>
    public async Task<ServerProcess> RestartWithArgumentsAsync(ServerProcess node, IReadOnlyList<string> extraArguments)
    {
        ArgumentNullException.ThrowIfNull(node);
        var restarted = node.Restart(extraArguments);
        _nodes[_nodes.IndexOf(node)] = restarted;
        await node.DisposeAsync().ConfigureAwait(false);
        await restarted.WaitUntilServingAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        return restarted;
    }

    /// <summary>Starts a node that exited again, on its ports and data directory, without waiting for it to serve (it may refuse to start).</summary>
    public async Task<ServerProcess> RestartWithoutWaitingAsync(ServerProcess node)
    {
        ArgumentNullException.ThrowIfNull(node);
        var restarted = node.Restart();
        _nodes[_nodes.IndexOf(node)] = restarted;
        await node.DisposeAsync().ConfigureAwait(false);
        return restarted;
    }

    /// <summary>With TLS and tokens on (StartAsync secure): the certificates, the admin token and how to trust the nodes.</summary>
    public Security? Secured { get; private init; }

    /// <summary>A handler for clients of this cluster: inside the lab if there is one, trusting the cluster CA if TLS is on.</summary>
    public HttpMessageHandler CreateClientHandler()
    {
        if (Lab is not null)
        {
            return Lab.CreateHandler();
        }
        var handler = new SocketsHttpHandler();
        if (_names == HostNames.PerNode)
        {
            // The slots' names exist only in the nodes' /etc/hosts: the tests' clients dial 127.0.0.1 for them.
            handler.ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    var host = context.DnsEndPoint.Host.StartsWith("raftkv-", StringComparison.Ordinal) ? "127.0.0.1" : context.DnsEndPoint.Host;
                    await socket.ConnectAsync(host, context.DnsEndPoint.Port, cancellationToken).ConfigureAwait(false);
                    return new System.Net.Sockets.NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }
        if (Secured is { } security)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = RaftKv.Contracts.TlsTrust.ServerValidator(security.Ca);
        }
        return handler;
    }

    private ServerProcess.Placement PlacementOf(int slot) => (Lab, _names) switch
    {
        ({ } lab, _) => new ServerProcess.Placement(lab.Address(slot), lab.Launcher(slot), lab.CreateHandler),
        // Each node runs in a mount namespace of its own whose /etc/hosts names every slot 127.0.0.1 (root and unshare):
        // its peers dial them by name through the system resolver, as containers do. The tests' clients map the names.
        (null, HostNames.PerNode) => new ServerProcess.Placement(HostNameOf(slot),
            ["unshare", "--mount", "sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\"", HostsFile], CreateClientHandler),
        _ => new ServerProcess.Placement(_names == HostNames.Localhost ? "localhost" : "127.0.0.1", [], CreateClientHandler,
            Secured is null ? "http" : "https", Secured?.Token),
    };

    /// <summary>Whether this machine can give a process its own /etc/hosts (<see cref="HostNames.PerNode"/>): root, and unshare works.</summary>
    public static bool CanNameHosts()
    {
        try
        {
            using var probe = Process.Start(new ProcessStartInfo("unshare", ["--mount", "true"]) { RedirectStandardError = true, UseShellExecute = false });
            if (probe is null)
            {
                return false;
            }
            probe.WaitForExit(10_000);
            return probe.HasExited && probe.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false; // no unshare
        }
    }

    /// <summary>A cluster CA, a certificate per node slot, and a tokens file with one admin token (what every test client uses).</summary>
    public sealed class Security
    {
        private Security(string folder, string token)
        {
            Folder = folder;
            Token = token;
            Ca = RaftKv.Contracts.TlsTrust.LoadCa(Path.Combine(folder, "ca.pem"));
        }

        public string Folder { get; }

        public string Token { get; }

        public System.Security.Cryptography.X509Certificates.X509Certificate2Collection Ca { get; }

        public IReadOnlyList<string> ArgumentsFor => ["--ca-file", Path.Combine(Folder, "ca.pem"), "--tokens-file", Path.Combine(Folder, "tokens")];

        public IReadOnlyList<string> NodeArguments(string nodeId) =>
            ["--cert-file", Path.Combine(Folder, nodeId + ".pem"), "--key-file", Path.Combine(Folder, nodeId + "-key.pem")];

        public static Security Create(string folder, int nodes, Faults.NetworkLab? lab)
        {
            if (lab is not null)
            {
                throw new NotSupportedException("TLS runs on loopback only");
            }
            RaftKv.Contracts.ClusterCertificates.CreateCa(folder, 1);
            for (var i = 1; i <= nodes; i++)
            {
                RaftKv.Contracts.ClusterCertificates.CreateLeaf(folder, "n" + i.ToString(CultureInfo.InvariantCulture), ["127.0.0.1"], 1);
            }
            var token = RaftKv.Contracts.TokenFormat.NewToken();
            File.WriteAllText(Path.Combine(folder, "tokens"), RaftKv.Contracts.TokenFormat.Line("tests", "admin", token) + "\n");
            return new Security(folder, token);
        }
    }

    private sealed record Spare(string NodeId, int Slot, string Host, int HttpPort, int PeerPort);

    private readonly Queue<Spare> _spares = new();

    /// <summary>The client URLs of the nodes that may join later, in the order <see cref="StartSpareAsync"/> starts them.</summary>
    public IReadOnlyList<Uri> SpareEndpoints { get; private set; } = [];

    /// <summary>Spare slots not started yet.</summary>
    public int SparesLeft => _spares.Count;

    /// <summary>
    /// Starts the next spare node, which joins the cluster through <paramref name="via"/> (--join), and waits until it
    /// serves /health. It has no configuration until someone adds it (POST /cluster/members).
    /// </summary>
    public async Task<ServerProcess> StartSpareAsync(ServerProcess via)
    {
        ArgumentNullException.ThrowIfNull(via);
        var spare = _spares.Count > 0 ? _spares.Dequeue() : throw new InvalidOperationException("no spare slot left: start the cluster with more spares");
        var dataDirectory = Path.Combine(Directory, spare.NodeId);
        var scheme = Secured is null ? "http" : "https";
        var node = ServerProcess.Start(spare.NodeId, spare.HttpPort, spare.PeerPort, dataDirectory,
        [
            "--node-id", spare.NodeId,
            "--join", via.BaseAddress.ToString(),
            "--peer", $"{scheme}://{spare.Host}:{spare.PeerPort}",
            "--http", $"{scheme}://{spare.Host}:{spare.HttpPort}",
            "--data-dir", dataDirectory,
            .. Secured?.NodeArguments(spare.NodeId) ?? [],
            .. _extraArguments,
        ], PlacementOf(spare.Slot), _serverDll);
        _nodes.Add(node);
        await node.WaitUntilServingAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false);
        return node;
    }

    /// <summary>A node's slot: its namespace in the lab (n1 is slot 0; spares follow the first members).</summary>
    public static int SlotOf(ServerProcess node)
    {
        ArgumentNullException.ThrowIfNull(node);
        return int.Parse(node.NodeId.AsSpan(1), CultureInfo.InvariantCulture) - 1;
    }

    /// <summary>Kills a node that left the cluster and stops counting it among the cluster's nodes.</summary>
    public async Task ForgetAsync(ServerProcess node)
    {
        ArgumentNullException.ThrowIfNull(node);
        _nodes.Remove(node);
        await node.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// A membership or leadership request to <paramref name="node"/> (POST/DELETE under /cluster), retried while the answer
    /// says "not now" (409 another change in flight, 503 no leader, 504 outcome unknown), as an operator would, at most
    /// <paramref name="attempts"/> times, 250 ms apart. Returns the last status and body.
    /// </summary>
    public static async Task<(HttpStatusCode Status, JsonElement Body)> ClusterRequestAsync(ServerProcess node, HttpMethod method, string path,
        object? body = null, int attempts = 40)
    {
        ArgumentNullException.ThrowIfNull(node);
        for (var attempt = 1; ; attempt++)
        {
            using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative)) { Content = body is null ? null : JsonContent.Create(body) };
            using var response = await node.Client.SendAsync(request).ConfigureAwait(false);
            var text = await response.Content.ReadAsStringAsync().ConfigureAwait(false);
            var json = text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone();
            if (response.StatusCode is not (HttpStatusCode.Conflict or HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout) || attempt == attempts)
            {
                return (response.StatusCode, json);
            }
            await Task.Delay(250).ConfigureAwait(false);
        }
    }

    public static async Task<HttpResponseMessage> SetAsync(ServerProcess node, string key, string value, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(node);
        return await node.Client.PostAsync(new Uri("/command", UriKind.Relative),
            JsonContent.Create(new { type = "SET", key, value }), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// A SET in a session, retried while the answer is 503 (no leader, not applied) or 504 (outcome unknown), as a client
    /// does: the session applies it at most once. Returns the last answer (at most 20 attempts, 100 ms apart).
    /// </summary>
    public static async Task<HttpResponseMessage> SetInSessionAsync(ServerProcess node, string key, string value, string clientId, ulong seq)
    {
        ArgumentNullException.ThrowIfNull(node);
        for (var attempt = 1; ; attempt++)
        {
            var response = await node.Client.PostAsync(new Uri("/command", UriKind.Relative),
                JsonContent.Create(new { type = "SET", key, value, clientId, seq })).ConfigureAwait(false);
            if (response.StatusCode is not (HttpStatusCode.ServiceUnavailable or HttpStatusCode.GatewayTimeout) || attempt == 20)
            {
                return response;
            }
            response.Dispose();
            await Task.Delay(100).ConfigureAwait(false);
        }
    }

    public static async Task<JsonElement> GetAsync(ServerProcess node, string key, bool stale = false)
    {
        ArgumentNullException.ThrowIfNull(node);
        using var response = await node.Client.PostAsync(new Uri("/command", UriKind.Relative),
            JsonContent.Create(new { type = "GET", key, consistency = stale ? "stale" : "linearizable" })).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadFromJsonAsync<JsonElement>().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in _nodes)
        {
            await node.DisposeAsync().ConfigureAwait(false);
        }
        Lab?.Dispose();
        try
        {
            if (System.IO.Directory.Exists(Directory))
            {
                System.IO.Directory.Delete(Directory, recursive: true);
            }
        }
        catch (IOException)
        {
            // A log still held open by a dying process; the temporary folder is cleaned by the OS later.
        }
    }
}

/// <summary>What a local cluster's URLs name: addresses (127.0.0.1), "localhost", or a name per node (raftkv-1, raftkv-2, …).</summary>
public enum HostNames
{
    Addresses,
    Localhost,
    PerNode,
}
