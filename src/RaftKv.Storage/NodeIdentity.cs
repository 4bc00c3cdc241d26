using System.Globalization;
using System.IO.Hashing;
using System.Security.Cryptography;
using System.Text;
using RaftKv.RaftCore;

namespace RaftKv.Storage;

/// <summary>
/// Who a data directory belongs to, written once when the directory is first used: the node id, the cluster id (fixed at
/// the cluster's bootstrap, learned from a member when joining) and an incarnation, a random number that no other data
/// directory has. Peers remember each node's incarnation (the runtime's PeerRegistry): a node that lost its data comes
/// back with a new one, and is refused.
/// </summary>
public sealed record NodeIdentity(NodeId Node, ulong ClusterId, ulong Incarnation)
{
    public const string FileName = "identity";

    public string ClusterIdText => FormatId(ClusterId);

    public static string FormatId(ulong id) => id.ToString("x16", CultureInfo.InvariantCulture);

    public static bool TryParseId(string? text, out ulong id) =>
        ulong.TryParse(text, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out id) && id != 0 && text!.Length == 16;

    /// <summary>
    /// A new cluster's id: the same on every member bootstrapped with the same configuration and token (as etcd derives
    /// its own from --initial-cluster and --initial-cluster-token). Two clusters bootstrapped from the same member list
    /// get different ids only if their tokens differ.
    /// </summary>
    public static ulong ClusterIdOf(ClusterConfig bootstrap, string token)
    {
        ArgumentNullException.ThrowIfNull(bootstrap);
        ArgumentNullException.ThrowIfNull(token);
        var hash = new XxHash64();
        hash.Append(bootstrap.Encode());
        hash.Append(Encoding.UTF8.GetBytes(token));
        var id = hash.GetCurrentHashAsUInt64();
        return id == 0 ? 1 : id;
    }

    /// <summary>
    /// The id of a cluster restored from a backup, or forced from one survivor's data: derived from what it starts from
    /// (so that every member restored from one backup with one configuration gets the same id) and never the old id.
    /// </summary>
    public static ulong DerivedClusterId(string why, SnapshotMetadata from, ClusterConfig config)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(config);
        var hash = new XxHash64();
        hash.Append(Encoding.UTF8.GetBytes(why));
        hash.Append(BitConverter.GetBytes(from.Index.Value));
        hash.Append(BitConverter.GetBytes(from.Term.Value));
        hash.Append(from.Config.Encode());
        hash.Append(config.Encode());
        var id = hash.GetCurrentHashAsUInt64();
        return id == 0 ? 1 : id;
    }

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

