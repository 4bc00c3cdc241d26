using System.Globalization;
using System.IO.Hashing;
using System.Security.Cryptography;
using System.Text;
using RaftKv.RaftCore;
using RaftKv.Storage;

namespace RaftKv.Hosting;

/// <summary>
/// Who a data directory belongs to, written once when the directory is first used: the node id, the cluster id (fixed at
/// the cluster's bootstrap, learned from a member when joining) and an incarnation, a random number that no other data
/// directory has. Peers remember each node's incarnation (<see cref="PeerRegistry"/>): a node that lost its data comes
/// back with a new one, and is refused.
/// </summary>
internal sealed record NodeIdentity(NodeId Node, ulong ClusterId, ulong Incarnation)
{
    public const string FileName = "identity";

    public string ClusterIdText => FormatId(ClusterId);

    public static string FormatId(ulong id) => id.ToString("x16", CultureInfo.InvariantCulture);

    public static bool TryParseId(string? text, out ulong id) =>
        ulong.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out id) && id != 0 && text!.Length == 16;

    /// <summary>A new cluster's id: the same on every member bootstrapped with the same configuration (as etcd derives its own).</summary>
    public static ulong ClusterIdOf(ClusterConfig bootstrap)
    {
        ArgumentNullException.ThrowIfNull(bootstrap);
        var id = XxHash64.HashToUInt64(bootstrap.Encode());
        return id == 0 ? 1 : id;
    }

    /// <summary>A new cluster's id for a cluster restored from a backup: never equal to the old one's.</summary>
    public static ulong NewClusterId() => RandomId();

    public static NodeIdentity Create(NodeId node, ulong clusterId) => new(node, clusterId, RandomId());

    private static ulong RandomId()
    {
        var id = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));
        return id == 0 ? 1 : id;
    }

    /// <summary>Reads the identity file; null when there is none. A damaged file stops the node (it never guesses who it is).</summary>
    public static NodeIdentity? Read(IFileSystem files)
    {
        var bytes = DurableFile.ReadAll(files, FileName);
        if (bytes is null)
        {
            return null;
        }
        var fields = Encoding.UTF8.GetString(bytes)
            .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => line.Split('=', 2))
            .Where(pair => pair.Length == 2)
            .ToDictionary(pair => pair[0], pair => pair[1], StringComparer.Ordinal);
        if (!fields.TryGetValue("node", out var node) || !RaftCore.NodeId.TryParse(node, out var nodeId)
            || !TryParseId(fields.GetValueOrDefault("cluster"), out var cluster)
            || !TryParseId(fields.GetValueOrDefault("incarnation"), out var incarnation))
        {
            throw new StorageException($"the data directory's {FileName} file is damaged; it must name node=, cluster= and incarnation=");
        }
        return new NodeIdentity(nodeId, cluster, incarnation);
    }

    public void Write(IFileSystem files) =>
        DurableFile.Replace(files, FileName, Encoding.UTF8.GetBytes($"node={Node}\ncluster={ClusterIdText}\nincarnation={FormatId(Incarnation)}\n"));
}

/// <summary>
/// The incarnation of every peer this node has heard from, kept in the data directory. The first message from a node
/// records its incarnation (durably, before the message is handled); a later message from the same id with another
/// incarnation comes from a node that lost its data directory and is refused: it may have voted in a term it no longer
/// remembers, so letting it vote again could elect two leaders in one term.
/// </summary>
internal sealed class PeerRegistry
{
    public const string FileName = "peers-seen";

    private readonly IFileSystem _files;
    private readonly Lock _lock = new();
    private Dictionary<NodeId, ulong> _seen;

    public PeerRegistry(IFileSystem files)
    {
        _files = files;
        _seen = [];
        var bytes = DurableFile.ReadAll(files, FileName);
        if (bytes is null)
        {
            return;
        }
        foreach (var line in Encoding.UTF8.GetString(bytes).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = line.Split(' ');
            if (parts.Length != 2 || !RaftCore.NodeId.TryParse(parts[0], out var id) || !NodeIdentity.TryParseId(parts[1], out var incarnation))
            {
                throw new StorageException($"the data directory's {FileName} file is damaged at '{line}'");
            }
            _seen[id] = incarnation;
        }
    }

    /// <summary>Null if <paramref name="node"/> may speak to us with <paramref name="incarnation"/>; otherwise why not.</summary>
    public string? Admit(NodeId node, ulong incarnation)
    {
        var seen = Volatile.Read(ref _seen);
        if (seen.TryGetValue(node, out var known))
        {
            return known == incarnation ? null : Refusal(node, known, incarnation);
        }
        lock (_lock)
        {
            if (_seen.TryGetValue(node, out known))
            {
                return known == incarnation ? null : Refusal(node, known, incarnation);
            }
            var next = new Dictionary<NodeId, ulong>(_seen) { [node] = incarnation };
            var text = string.Concat(next.OrderBy(p => p.Key).Select(p => $"{p.Key} {NodeIdentity.FormatId(p.Value)}\n"));
            DurableFile.Replace(_files, FileName, Encoding.UTF8.GetBytes(text));
            Volatile.Write(ref _seen, next);
            return null;
        }
    }

    private static string Refusal(NodeId node, ulong known, ulong incarnation) =>
        $"{node} is known to this cluster with another data directory (incarnation {NodeIdentity.FormatId(known)}, now {NodeIdentity.FormatId(incarnation)}): " +
        $"a node that lost its data must not rejoin under its old id; remove {node} and add the machine under a new id (raft-cli member add, then start it with --join)";
}
