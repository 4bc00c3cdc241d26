using System.Globalization;
using Microsoft.Extensions.Options;
using RaftKv.RaftCore;

namespace RaftKv.Server;

/// <summary>
/// Everything a node is configured with: from appsettings.json, then RAFTKV__* environment variables, then the command
/// line (--node-id, --peers, --data-dir, --http, --peer, and --Name=value for the rest). The default is a working
/// single-node cluster on 127.0.0.1:8080 with ./data.
/// </summary>
public sealed class ServerOptions
{
    public const string Section = "RaftKv";

    /// <summary>This node's id, "n1" or "1".</summary>
    public string NodeId { get; set; } = "n1";

    /// <summary>Every member and its peer URL: "n1=http://127.0.0.1:9081,n2=...". Empty: this node alone, at <see cref="Peer"/>.</summary>
    public string Peers { get; set; } = "";

    public string DataDir { get; set; } = "./data";

    /// <summary>Where clients connect (HTTP/1.1 and HTTP/2).</summary>
    public string Http { get; set; } = "http://127.0.0.1:8080";

    /// <summary>Where peers connect (gRPC over HTTP/2). Defaults to this node's URL in <see cref="Peers"/>.</summary>
    public string Peer { get; set; } = "";

    public int TickMs { get; set; } = 100;

    public int ElectionTimeoutTicks { get; set; } = 10;

    public int HeartbeatIntervalTicks { get; set; } = 1;

    /// <summary>How long a request waits for its outcome before it is answered 504 (outcome unknown).</summary>
    public int RequestTimeoutMs { get; set; } = 5_000;

    public int MaxKeyBytes { get; set; } = 1024;

    public int MaxValueBytes { get; set; } = 1024 * 1024;

    public long MaxRequestBodyBytes { get; set; } = 2L * 1024 * 1024 + 64 * 1024;

    public int MaxPendingRequests { get; set; } = 16_384;

    public int SnapshotThresholdEntries { get; set; } = 10_000;

    public int SnapshotKeepEntries { get; set; } = 1_000;

    public int SnapshotsToKeep { get; set; } = 2;

    public long SegmentBytes { get; set; } = 64L * 1024 * 1024;

    public int MaxSessions { get; set; } = 100_000;

    /// <summary>"text" (default) or "json".</summary>
    public string LogFormat { get; set; } = "text";

    /// <summary>Serve the client API only on the client port and the peer service only on the peer port (off for in-process tests).</summary>
    public bool SeparatePorts { get; set; } = true;

    /// <summary>Seeds election jitter; 0 picks one at start.</summary>
    public int RandomSeed { get; set; }

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

    /// <summary>
    /// Command-line switches: --node-id, --peers, --data-dir, --http, --peer, --log-format, and every option by its name
    /// (--TickMs 50) or in kebab case (--tick-ms 50).
    /// </summary>
    public static Dictionary<string, string> SwitchMappings()
    {
        var mappings = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var property in typeof(ServerOptions).GetProperties().Where(p => p.CanWrite))
        {
            var key = $"{Section}:{property.Name}";
            mappings["--" + property.Name] = key;
            mappings["--" + Kebab(property.Name)] = key;
        }
        return mappings;
    }

    private static string Kebab(string name) =>
        string.Concat(name.Select((c, i) => char.IsUpper(c) && i > 0 ? "-" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
}

/// <summary>Checks every option at start; each bad value gives one line naming it.</summary>
public sealed class ServerOptionsValidator : IValidateOptions<ServerOptions>
{
    public ValidateOptionsResult Validate(string? name, ServerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failures = new List<string>();
        if (!NodeId.TryParse(options.NodeId, out var self))
        {
            failures.Add($"--node-id: '{options.NodeId}' is not a node id (use n1, n2, … or 1, 2, …)");
        }
        failures.AddRange(ValidatePeers(options, self));
        if (!IsHttpUrl(options.Http))
        {
            failures.Add($"--http: '{options.Http}' is not an absolute http:// URL with a port");
        }
        if (!string.IsNullOrWhiteSpace(options.Peer) && !IsHttpUrl(options.Peer))
        {
            failures.Add($"--peer: '{options.Peer}' is not an absolute http:// URL with a port");
        }
        if (IsHttpUrl(options.Http) && failures.Count == 0 && new Uri(options.Http).Port == options.PeerUrl.Port)
        {
            failures.Add($"--peer: the peer port {options.PeerUrl.Port} must differ from the client port in --http");
        }
        if (string.IsNullOrWhiteSpace(options.DataDir))
        {
            failures.Add("--data-dir: must name a directory");
        }
        Range(failures, nameof(options.TickMs), options.TickMs, 1, 10_000);
        Range(failures, nameof(options.ElectionTimeoutTicks), options.ElectionTimeoutTicks, 2, 1_000);
        Range(failures, nameof(options.HeartbeatIntervalTicks), options.HeartbeatIntervalTicks, 1, options.ElectionTimeoutTicks - 1);
        Range(failures, nameof(options.RequestTimeoutMs), options.RequestTimeoutMs, 10, 600_000);
        Range(failures, nameof(options.MaxKeyBytes), options.MaxKeyBytes, 1, 64 * 1024);
        Range(failures, nameof(options.MaxValueBytes), options.MaxValueBytes, 1, 8 * 1024 * 1024);
        if (options.MaxRequestBodyBytes < options.MaxValueBytes + options.MaxKeyBytes)
        {
            failures.Add($"{nameof(options.MaxRequestBodyBytes)}: must be at least {nameof(options.MaxValueBytes)} + {nameof(options.MaxKeyBytes)}");
        }
        Range(failures, nameof(options.MaxPendingRequests), options.MaxPendingRequests, 1, 1_000_000);
        Range(failures, nameof(options.SnapshotThresholdEntries), options.SnapshotThresholdEntries, 1, int.MaxValue);
        Range(failures, nameof(options.SnapshotKeepEntries), options.SnapshotKeepEntries, 0, int.MaxValue);
        Range(failures, nameof(options.SnapshotsToKeep), options.SnapshotsToKeep, 1, 100);
        Range(failures, nameof(options.MaxSessions), options.MaxSessions, 1, 10_000_000);
        if (options.SegmentBytes < 4096)
        {
            failures.Add($"{nameof(options.SegmentBytes)}: must be at least 4096");
        }
        if (options.LogFormat is not ("text" or "json"))
        {
            failures.Add($"--log-format: '{options.LogFormat}' must be text or json");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static IEnumerable<string> ValidatePeers(ServerOptions options, NodeId self)
    {
        if (string.IsNullOrWhiteSpace(options.Peers))
        {
            yield break;
        }
        var seen = new HashSet<NodeId>();
        foreach (var part in options.Peers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var split = part.IndexOf('=', StringComparison.Ordinal);
            if (split <= 0 || !NodeId.TryParse(part[..split], out var id))
            {
                yield return $"--peers: '{part}' is not id=url (for example n1=http://127.0.0.1:9081)";
                continue;
            }
            if (!IsHttpUrl(part[(split + 1)..]))
            {
                yield return $"--peers: '{part}' has no absolute http:// URL with a port";
            }
            if (!seen.Add(id))
            {
                yield return $"--peers: {id} is listed twice";
            }
        }
        if (!self.IsNone && seen.Count > 0 && !seen.Contains(self))
        {
            yield return $"--peers: does not list this node ({self}); every member, this one included, must be listed";
        }
        if (seen.Count > 7)
        {
            yield return $"--peers: {seen.Count} members; RaftKv clusters have at most 7";
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
        Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme == Uri.UriSchemeHttp && !uri.IsDefaultPort && uri.AbsolutePath == "/";
}
