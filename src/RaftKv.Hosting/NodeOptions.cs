using System.Globalization;
using RaftKv.RaftCore;

namespace RaftKv.Hosting;

/// <summary>
/// Who this node is, where it listens and how it keeps time (configuration section RaftKv:Node). The defaults are a working
/// single-node cluster on 127.0.0.1:8080 with ./data.
/// </summary>
public sealed class NodeOptions : IValidatedOptions
{
    /// <summary>This node's id, "n1" or "1".</summary>
    public string NodeId { get; set; } = DefaultNodeId;

    private const string DefaultNodeId = "n1";

    /// <summary>Every member and its peer URL: "n1=http://127.0.0.1:9081,n2=...". Empty: this node alone, at <see cref="Peer"/>.</summary>
    public string Peers { get; set; } = "";

    /// <summary>
    /// The client URL of any member of an existing cluster. A node started with an empty data directory and Join takes
    /// that cluster's id and members from it, and waits, with no configuration, to be added (raft-cli member add). Once its
    /// data directory holds data, Join only checks that the cluster is the same one. Excludes <see cref="Peers"/>.
    /// </summary>
    public string Join { get; set; } = "";

    /// <summary>
    /// Mixed into the cluster id at bootstrap (like etcd's --initial-cluster-token): give each cluster its own when two
    /// clusters are bootstrapped from the same member list, so that their nodes can never talk to each other by mistake.
    /// </summary>
    public string ClusterToken { get; set; } = "raftkv";

    public string DataDir { get; set; } = "./data";

    /// <summary>
    /// Disaster recovery (like etcd's --force-new-cluster): when a majority of the members is lost for good, start this
    /// survivor as a new cluster of itself alone, from its own data. It gets a new cluster id, so the lost members can
    /// never rejoin it by mistake. Use it once, then restart without it; grow the cluster again with --join.
    /// </summary>
    public bool ForceNewCluster { get; set; }

    /// <summary>Where clients connect (HTTP/1.1): an IP address, localhost, a wildcard, or a host name (then every address is bound).</summary>
    public string Http { get; set; } = "http://127.0.0.1:8080";

    /// <summary>Where peers connect (gRPC over cleartext HTTP/2). Defaults to this node's URL in <see cref="Peers"/>, else port 9080.</summary>
    public string Peer { get; set; } = "";

    /// <summary>
    /// Where the client listener binds when that is not <see cref="Http"/>'s own address (like etcd's --listen-client-urls
    /// beside --advertise-client-urls): an IP address, localhost or 0.0.0.0, never a host name. Empty: Http's address, or
    /// every address when Http names a host.
    /// </summary>
    public string ListenHttp { get; set; } = "";

    /// <summary>Where the peer listener binds (like etcd's --listen-peer-urls), with the rules of <see cref="ListenHttp"/>. Empty: from the peer URL.</summary>
    public string ListenPeer { get; set; } = "";

    /// <summary>
    /// A second client listener that speaks HTTP/2 alone, without TLS (prior knowledge, as gRPC clients do), with the rules
    /// of <see cref="ListenHttp"/>: the same API as the client port, for clients that multiplex their requests over one
    /// connection (the .NET client's <c>Http2</c>, raft-cli's <c>--http2</c>). Empty: none. Cleartext only: with TLS the
    /// client port itself negotiates HTTP/2.
    /// </summary>
    public string ListenHttp2 { get; set; } = "";

    /// <summary>
    /// NAME:REPLICAS:DOMAIN, for a pod of a Kubernetes StatefulSet: the node id comes from the pod's ordinal in its host name
    /// (NAME-0 is n1) and the members from the replica count (n1=http://NAME-0.DOMAIN:9080, …). Excludes Peers and Join.
    /// </summary>
    public string StatefulSet { get; set; } = "";

    /// <summary>One tick of the protocol's logical clock (election timeouts and heartbeats count ticks).</summary>
    public int TickMs { get; set; } = 100;

    /// <summary>How long a request waits for its outcome before it is answered as unknown (a write) or timed out (a read).</summary>
    public int RequestTimeoutMs { get; set; } = 5_000;

    /// <summary>The largest request body Kestrel reads on the client port.</summary>
    public long MaxRequestBodyBytes { get; set; } = 2L * 1024 * 1024 + 64 * 1024;

    /// <summary>/health/ready fails while this node's applied index is more than this many entries behind its commit index.</summary>
    public int ReadyMaxApplyLagEntries { get; set; } = 1_000;

    /// <summary>Requests per second each client address may make on the client port (a token bucket); 0: no limit. Beyond it: 429.</summary>
    public int RateLimitPerSecond { get; set; }

    /// <summary>Requests a client address may make at once above its rate (the bucket's size); 0: the same as <see cref="RateLimitPerSecond"/>.</summary>
    public int RateLimitBurst { get; set; }

    /// <summary>Connections Kestrel keeps open at once, both ports together; 0: no limit.</summary>
    public int MaxConnections { get; set; }

    /// <summary>The largest request headers Kestrel reads, in bytes (all of them together).</summary>
    public int MaxRequestHeadersBytes { get; set; } = 32 * 1024;

    /// <summary>"text" (default) or "json".</summary>
    public string LogFormat { get; set; } = "text";

    /// <summary>Serve the client API only on the client port and the peer service only on the peer port (off for in-process tests).</summary>
    public bool SeparatePorts { get; set; } = true;

    /// <summary>This machine's host name, which names a StatefulSet pod (Kubernetes sets HOSTNAME to the pod's name).</summary>
    internal string HostName { get; init; } = Environment.GetEnvironmentVariable("HOSTNAME") is { Length: > 0 } name ? name : Environment.MachineName;

    // ---- derived, valid only after validation

    public NodeId Id => StatefulSetMember() is { } member ? member.Id
        : RaftCore.NodeId.TryParse(NodeId, out var id) ? id : RaftCore.NodeId.None;

    /// <summary>The member list in force: <see cref="Peers"/>, or the one <see cref="StatefulSet"/> derives.</summary>
    internal string EffectivePeers => StatefulSetMember() is { } member ? member.Peers : Peers;

    private StatefulSetMember? StatefulSetMember() =>
        string.IsNullOrWhiteSpace(StatefulSet) ? null
        : StatefulSetPeers.TryResolve(StatefulSet, HostName, StatefulSetScheme, StatefulSetPeerPort, out var member, out _) ? member : null;

    // Derived members dial the peer port of Peer (9080 without it), over https when Http is https (TLS on).
    private string StatefulSetScheme => Uri.TryCreate(Http, UriKind.Absolute, out var http) && http.Scheme == Uri.UriSchemeHttps ? "https" : "http";

    private int StatefulSetPeerPort => Uri.TryCreate(Peer, UriKind.Absolute, out var peer) && !peer.IsDefaultPort ? peer.Port : 9080;

    public IReadOnlyDictionary<NodeId, Uri> PeerUrls()
    {
        var peers = new SortedDictionary<NodeId, Uri>();
        if (string.IsNullOrWhiteSpace(EffectivePeers))
        {
            peers[Id] = new Uri(string.IsNullOrWhiteSpace(Peer) ? "http://127.0.0.1:9080" : Peer);
            return peers;
        }
        foreach (var part in EffectivePeers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var split = part.IndexOf('=', StringComparison.Ordinal);
            if (RaftCore.NodeId.TryParse(part[..split], out var id))
            {
                peers[id] = new Uri(part[(split + 1)..]);
            }
        }
        return peers;
    }

    public Uri PeerUrl => string.IsNullOrWhiteSpace(Peer) ? PeerUrls()[Id] : new Uri(Peer);

    public Uri HttpUrl => new(Http);

    /// <summary>Where the client listener binds: <see cref="ListenHttp"/>, else <see cref="Http"/> (a host name there binds every address).</summary>
    public Uri HttpListenUrl => string.IsNullOrWhiteSpace(ListenHttp) ? HttpUrl : new Uri(ListenHttp);

    /// <summary>Where the peer listener binds: <see cref="ListenPeer"/>, else the peer URL (a host name there binds every address).</summary>
    public Uri PeerListenUrl => string.IsNullOrWhiteSpace(ListenPeer) ? PeerUrl : new Uri(ListenPeer);

    /// <summary>Where the HTTP/2 client listener binds (<see cref="ListenHttp2"/>); null: there is none.</summary>
    public Uri? Http2ListenUrl => string.IsNullOrWhiteSpace(ListenHttp2) ? null : new Uri(ListenHttp2);

    /// <summary>The local ports that serve the client API: the client listener's, and the HTTP/2 listener's if there is one.</summary>
    internal int[] ClientListenPorts => Http2ListenUrl is { } http2 ? [HttpListenUrl.Port, http2.Port] : [HttpListenUrl.Port];

    public TimeSpan RequestTimeout => TimeSpan.FromMilliseconds(RequestTimeoutMs);

    public IEnumerable<string> Validate()
    {
        var failures = new List<string>();
        failures.AddRange(ValidateStatefulSet());
        if (!RaftCore.NodeId.TryParse(NodeId, out var self))
        {
            failures.Add($"NodeId: '{NodeId}' is not a node id (use n1, n2, … or 1, 2, …)");
        }
        if (StatefulSetMember() is { } member)
        {
            self = member.Id;
        }
        failures.AddRange(ValidatePeers(self));
        if (!string.IsNullOrWhiteSpace(Join) && !IsHttpUrl(Join))
        {
            failures.Add($"Join: '{Join}' is not an absolute http:// URL with a port (a member's client URL)");
        }
        if (!string.IsNullOrWhiteSpace(Join) && !string.IsNullOrWhiteSpace(Peers))
        {
            failures.Add("Join: a joining node learns the members from the cluster; leave Peers empty (set Peer to this node's own peer URL)");
        }
        if (!IsNodeUrl(Http))
        {
            failures.Add($"Http: '{Http}' is not an http:// (or https://) URL with a port and a host (an IP address, a host name, or 0.0.0.0 for every address)");
        }
        if (!string.IsNullOrWhiteSpace(Peer) && !IsNodeUrl(Peer))
        {
            failures.Add($"Peer: '{Peer}' is not an http:// (or https://) URL with a port and a host (an IP address, a host name, or 0.0.0.0 for every address)");
        }
        if (failures.Count == 0 && string.IsNullOrWhiteSpace(Peer) && !IsNodeUrl(PeerUrl.ToString()))
        {
            failures.Add($"Peers: this node's own URL ({PeerUrl}) names no host to listen on; set Peer (for example http://0.0.0.0:{PeerUrl.Port})");
        }
        foreach (var (name, value) in new[] { (nameof(ListenHttp), ListenHttp), (nameof(ListenPeer), ListenPeer), (nameof(ListenHttp2), ListenHttp2) })
        {
            if (!string.IsNullOrWhiteSpace(value) && !IsListenUrl(value))
            {
                failures.Add($"{name}: '{value}' is not an http:// (or https://) URL with a port and an address to listen on (an IP address, localhost, or 0.0.0.0 for every address; a host name belongs in {(name == nameof(ListenPeer) ? "Peer" : "Http")})");
            }
        }
        if (failures.Count == 0 && HttpListenUrl.Port == PeerListenUrl.Port)
        {
            failures.Add(string.IsNullOrWhiteSpace(ListenHttp) && string.IsNullOrWhiteSpace(ListenPeer)
                ? $"Peer: the peer port {PeerUrl.Port} must differ from the client port in Http"
                : $"ListenPeer: the peer listener's port {PeerListenUrl.Port} must differ from the client listener's");
        }
        if (failures.Count == 0 && Http2ListenUrl is { } http2)
        {
            if (http2.Scheme != Uri.UriSchemeHttp)
            {
                failures.Add($"ListenHttp2: '{ListenHttp2}' must be http://: it is the cleartext HTTP/2 listener (with TLS the client port negotiates HTTP/2 itself)");
            }
            else if (http2.Port == HttpListenUrl.Port || http2.Port == PeerListenUrl.Port)
            {
                failures.Add($"ListenHttp2: the HTTP/2 listener's port {http2.Port} must differ from the client listener's ({HttpListenUrl.Port}) and the peer listener's ({PeerListenUrl.Port})");
            }
        }
        if (ClusterToken.Length > 256)
        {
            failures.Add($"ClusterToken: {ClusterToken.Length} characters; at most 256");
        }
        if (string.IsNullOrWhiteSpace(DataDir))
        {
            failures.Add("DataDir: must name a directory");
        }
        Range(failures, nameof(TickMs), TickMs, 1, 10_000);
        Range(failures, nameof(RequestTimeoutMs), RequestTimeoutMs, 10, 600_000);
        Range(failures, nameof(MaxRequestBodyBytes), MaxRequestBodyBytes, 1024, 1L << 30);
        Range(failures, nameof(ReadyMaxApplyLagEntries), ReadyMaxApplyLagEntries, 0, int.MaxValue);
        Range(failures, nameof(RateLimitPerSecond), RateLimitPerSecond, 0, 10_000_000);
        Range(failures, nameof(RateLimitBurst), RateLimitBurst, 0, 10_000_000);
        Range(failures, nameof(MaxConnections), MaxConnections, 0, 10_000_000);
        Range(failures, nameof(MaxRequestHeadersBytes), MaxRequestHeadersBytes, 1024, 1024 * 1024);
        if (LogFormat is not ("text" or "json"))
        {
            failures.Add($"LogFormat: '{LogFormat}' must be text or json");
        }
        return failures;
    }

    private IEnumerable<string> ValidateStatefulSet()
    {
        if (string.IsNullOrWhiteSpace(StatefulSet))
        {
            yield break;
        }
        if (!StatefulSetPeers.TryResolve(StatefulSet, HostName, StatefulSetScheme, StatefulSetPeerPort, out var member, out var error))
        {
            yield return "StatefulSet: " + error;
            yield break;
        }
        if (!string.IsNullOrWhiteSpace(Peers))
        {
            yield return "StatefulSet: the members come from the replica count; leave Peers empty";
        }
        if (!string.IsNullOrWhiteSpace(Join))
        {
            yield return "StatefulSet: a StatefulSet's pods bootstrap the cluster together; leave Join empty";
        }
        // NodeId left at its default is simply replaced; one given on purpose must agree.
        if (NodeId != DefaultNodeId && RaftCore.NodeId.TryParse(NodeId, out var given) && given != member.Id)
        {
            yield return $"NodeId: '{NodeId}', but StatefulSet makes host {HostName} {member.Id}; leave NodeId out";
        }
    }

    private IEnumerable<string> ValidatePeers(NodeId self)
    {
        if (string.IsNullOrWhiteSpace(EffectivePeers))
        {
            yield break;
        }
        var seen = new HashSet<NodeId>();
        foreach (var part in EffectivePeers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var split = part.IndexOf('=', StringComparison.Ordinal);
            if (split <= 0 || !RaftCore.NodeId.TryParse(part[..split], out var id))
            {
                yield return $"Peers: '{part}' is not id=url (for example n1=http://127.0.0.1:9081)";
                continue;
            }
            if (!IsHttpUrl(part[(split + 1)..]))
            {
                yield return $"Peers: '{part}' has no absolute http:// URL with a port";
            }
            if (!seen.Add(id))
            {
                yield return $"Peers: {id} is listed twice";
            }
        }
        if (!self.IsNone && seen.Count > 0 && !seen.Contains(self))
        {
            yield return $"Peers: does not list this node ({self}); every member, this one included, must be listed";
        }
        if (seen.Count == 0)
        {
            yield return $"Peers: '{EffectivePeers}' lists no member (leave it empty for a single-node cluster)";
        }
        if (seen.Count > 7)
        {
            yield return $"Peers: {seen.Count} members; RaftKv clusters have at most 7";
        }
    }

    private static void Range(List<string> failures, string name, long value, long min, long max)
    {
        if (value < min || value > max)
        {
            failures.Add(string.Create(CultureInfo.InvariantCulture, $"{name}: {value} is outside [{min}, {max}]"));
        }
    }

    private static bool IsHttpUrl(string text) =>
        Uri.TryCreate(text, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
        && !uri.IsDefaultPort && uri.AbsolutePath == "/";

    /// <summary>An http:// URL a listener can bind: an IP address, localhost, or 0.0.0.0 / * / + for every address.</summary>
    private static bool IsListenUrl(string text) =>
        IsHttpUrl(text) && new Uri(text) is var uri
        && (uri.Host is "localhost" or "*" or "+" || uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6);

    /// <summary>One of this node's own URLs: what <see cref="IsListenUrl"/> takes, or a host name (then every address is bound).</summary>
    private static bool IsNodeUrl(string text) =>
        IsListenUrl(text) || (IsHttpUrl(text) && new Uri(text).HostNameType == UriHostNameType.Dns);
}
