using RaftKv.RaftCore;

namespace RaftKv.Storage;

/// <summary>
/// Lays out a data directory that starts a new cluster from a backup (a snapshot file saved from a live node): the
/// backup's state under a new configuration, and a new identity. Every member of the new cluster is restored from the
/// same backup with the same configuration, so they start with the same snapshot and the same cluster id, which is never
/// the old cluster's: a member of the old cluster cannot talk to the new one by mistake.
/// </summary>
public static class DataDirectoryRestore
{
    /// <summary>What a restore wrote: the snapshot it starts from and the new cluster's id.</summary>
    public sealed record Restored(SnapshotMetadata Snapshot, NodeIdentity Identity, long StateBytes);

    public static Restored Restore(string backupFile, string dataDirectory, NodeId node, ClusterConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (!config.Voters.Contains(node))
        {
            throw new ArgumentException($"{node} is not one of the new cluster's members ({config})", nameof(node));
        }
        var target = Path.GetFullPath(dataDirectory);
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
        {
            throw new StorageException($"{target} is not empty: a restore writes a new data directory, never over one");
        }
        var source = Path.GetFullPath(backupFile);
        var (backup, data) = FileSnapshotStore.OpenFile(new PhysicalFileSystem(Path.GetDirectoryName(source)!), Path.GetFileName(source));
        using (data)
        {
            Directory.CreateDirectory(target);
            var files = new PhysicalFileSystem(target);
            var snapshot = new SnapshotMetadata(backup.Index, backup.Term, config);
            var identity = NodeIdentity.Create(node, NodeIdentity.DerivedClusterId("restore", backup, config));
            using (var writer = new FileSnapshotStore(files).Create(snapshot))
            {
                data.CopyTo(writer.Stream);
                writer.Commit();
            }
            // The identity last: a directory without one is not a restored member yet.
            identity.Write(files);
            return new Restored(snapshot, identity, data.Length);
        }
    }
}
