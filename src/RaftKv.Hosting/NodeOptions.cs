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
    public string NodeId { get; set; } = "n1";

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

    /// <summary>Where clients connect (HTTP/1.1).</summary>
    public string Http { get; set; } = "http://127.0.0.1:8080";

    /// <summary>Where peers connect (gRPC over cleartext HTTP/2). Defaults to this node's URL in <see cref="Peers"/>, else port 9080.</summary>
    public string Peer { get; set; } = "";

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

    // ---- derived, valid only after validation

    public NodeId Id => RaftCore.NodeId.TryParse(NodeId, out var id) ? id : RaftCore.NodeId.None;

    public IReadOnlyDictionary<NodeId, Uri> PeerUrls()
    {
        var peers = new SortedDictionary<NodeId, Uri>();
        if (string.IsNullOrWhiteSpace(Peers))
        {
            peers[Id] = new Uri(string.IsNullOrWhiteSpace(Peer) ? "http://127.0.0.1:9080" : Peer);
            return peers;
        }
        foreach (var part in Peers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
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

    public TimeSpan RequestTimeout => TimeSpan.FromMilliseconds(RequestTimeoutMs);

    public IEnumerable<string> Validate()
    {
        var failures = new List<string>();
        if (!RaftCore.NodeId.TryParse(NodeId, out var self))
        {
            failures.Add($"NodeId: '{NodeId}' is not a node id (use n1, n2, … or 1, 2, …)");
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
        if (!IsListenUrl(Http))
        {
            failures.Add($"Http: '{Http}' is not an http:// (or https://) URL with a port and an address to listen on (an IP address or localhost)");
        }
        if (!string.IsNullOrWhiteSpace(Peer) && !IsListenUrl(Peer))
        {
            failures.Add($"Peer: '{Peer}' is not an http:// (or https://) URL with a port and an address to listen on (an IP address or localhost)");
        }
        if (failures.Count == 0 && string.IsNullOrWhiteSpace(Peer) && !IsListenUrl(PeerUrl.ToString()))
        {
            failures.Add($"Peer: this node listens for peers at its own URL in Peers ({PeerUrl}), which names no address to listen on; set Peer (for example http://0.0.0.0:{PeerUrl.Port})");
        }
        if (failures.Count == 0 && HttpUrl.Port == PeerUrl.Port)
        {
            failures.Add($"Peer: the peer port {PeerUrl.Port} must differ from the client port in Http");
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

    private IEnumerable<string> ValidatePeers(NodeId self)
    {
        if (string.IsNullOrWhiteSpace(Peers))
        {
            yield break;
        }
        var seen = new HashSet<NodeId>();
        foreach (var part in Peers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
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
            yield return $"Peers: '{Peers}' lists no member (leave it empty for a single-node cluster)";
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

    /// <summary>An http:// URL this node can listen on: an IP address, localhost, or 0.0.0.0 / * / + for every address.</summary>
    private static bool IsListenUrl(string text) =>
        IsHttpUrl(text) && new Uri(text) is var uri
        && (uri.Host is "localhost" or "*" or "+" || uri.HostNameType is UriHostNameType.IPv4 or UriHostNameType.IPv6);
}
