using System.CommandLine;
using System.Text.Json.Serialization;
using RaftKv.RaftCore;
using RaftKv.Storage;

namespace RaftKv.Cli;

/// <summary>raft-cli snapshot save|restore: backups from a live cluster, and new clusters from a backup.</summary>
internal static class SnapshotCommands
{
    public static Command Create(CliContext context)
    {
        var command = new Command("snapshot", """
            Back up a live cluster, and start a new cluster from a backup.

            Examples:
              raft-cli snapshot save backup.snap
              raft-cli snapshot restore backup.snap --data-dir /var/lib/raftkv --node-id n1 \
                --peers n1=http://10.0.0.1:9080,n2=http://10.0.0.2:9080,n3=http://10.0.0.3:9080
            """);
        command.Subcommands.Add(Save(context));
        command.Subcommands.Add(Restore(context));
        return command;
    }

    private static Command Save(CliContext context)
    {
        var file = new Argument<FileInfo>("file") { Description = "Where to write the backup (written beside, checked, then renamed)" };
        var stale = new Option<bool>("--stale") { Description = "Take it from any node at once (it may miss the latest writes); default: from the leader after a ReadIndex round" };
        var command = new Command("save", """
            Stream a consistent snapshot of the whole state from a live node into FILE: the state at one log index, with its
            term and the configuration there, checksummed (CRC32C). By default it comes from the leader after a ReadIndex
            round, so it holds every write acknowledged before the command started.
            """);
        command.Arguments.Add(file);
        command.Options.Add(stale);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            var target = result.GetValue(file)!;
            var partial = target.FullName + ".partial";
            using var client = context.Client(result);
            Uri from;
            await using (var output = File.Create(partial))
            {
                from = await client.SaveSnapshotAsync(output, result.GetValue(stale), cancellationToken).ConfigureAwait(false);
                await output.FlushAsync(cancellationToken).ConfigureAwait(false);
                output.Flush(flushToDisk: true);
            }
            SnapshotMetadata metadata;
            long bytes;
            try
            {
                var (read, data) = FileSnapshotStore.OpenFile(new PhysicalFileSystem(target.DirectoryName!), Path.GetFileName(partial));
                using (data)
                {
                    (metadata, bytes) = (read, data.Length);
                }
            }
            catch (StorageException error)
            {
                File.Delete(partial);
                throw new IOException("the snapshot received is damaged, nothing saved: " + error.Message, error);
            }
            File.Move(partial, target.FullName, overwrite: true);
            var saved = new SnapshotSaved(target.FullName, from.ToString(), metadata.Index.Value, metadata.Term.Value, metadata.Config.ToString(), bytes);
            if (context.Json(result))
            {
                CliContext.WriteJson(saved, SnapshotJson.Default.SnapshotSaved);
            }
            else
            {
                Console.Out.WriteLine($"OK: saved the state at index {saved.Index} (term {saved.Term}, {saved.Config}) from {from}: {saved.StateBytes:N0} bytes of state in {saved.File}");
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Restore(CliContext context)
    {
        var file = new Argument<FileInfo>("file") { Description = "A backup written by raft-cli snapshot save" };
        var dataDir = new Option<string>("--data-dir") { Description = "The new node's data directory (must be empty or absent)", Required = true };
        var nodeId = new Option<string>("--node-id") { Description = "The new node's id (one of --peers)", Required = true };
        var peers = new Option<string>("--peers") { Description = "Every member of the new cluster and its peer URL: n1=http://10.0.0.1:9080,…", Required = true };
        var command = new Command("restore", """
            Lay out a data directory that starts a NEW cluster from a backup: run it once per member, with the same FILE and
            --peers, then start each member with its --data-dir and the same --peers. The new cluster has a new cluster id, so
            members of the old one can never join it by mistake. Works offline; nothing is contacted.
            """);
        command.Arguments.Add(file);
        command.Options.Add(dataDir);
        command.Options.Add(nodeId);
        command.Options.Add(peers);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(() =>
        {
            var source = result.GetValue(file)!;
            if (!source.Exists)
            {
                throw new UsageException($"snapshot restore: {source.FullName} does not exist");
            }
            if (!NodeId.TryParse(result.GetValue(nodeId)!, out var node))
            {
                throw new UsageException($"--node-id: '{result.GetValue(nodeId)}' is not a node id (n1 or 1)");
            }
            var config = ParsePeers(result.GetValue(peers)!);
            if (!config.Voters.Contains(node))
            {
                throw new UsageException($"--peers: does not list {node}; every member, this one included, must be listed");
            }
            DataDirectoryRestore.Restored restored;
            try
            {
                restored = DataDirectoryRestore.Restore(source.FullName, result.GetValue(dataDir)!, node, config);
            }
            catch (StorageException error)
            {
                throw new IOException(error.Message, error);
            }
            var report = new SnapshotRestored(Path.GetFullPath(result.GetValue(dataDir)!), node.ToString(), restored.Identity.ClusterIdText,
                restored.Snapshot.Index.Value, restored.Snapshot.Term.Value, restored.Snapshot.Config.ToString(), restored.StateBytes);
            if (context.Json(result))
            {
                CliContext.WriteJson(report, SnapshotJson.Default.SnapshotRestored);
            }
            else
            {
                Console.Out.WriteLine($"OK: {report.DataDirectory} starts {report.Node} of the new cluster {report.ClusterId} ({report.Config}) " +
                    $"from the state at index {report.Index} (term {report.Term}, {report.StateBytes:N0} bytes)");
            }
            return Task.FromResult(ExitCodes.Ok);
        }));
        return command;
    }

    /// <summary>--peers as the server reads it: id=url,… (the url is the member's peer URL, as its address in the configuration).</summary>
    private static ClusterConfig ParsePeers(string text)
    {
        var members = new Dictionary<NodeId, string>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var split = part.IndexOf('=', StringComparison.Ordinal);
            if (split <= 0 || !NodeId.TryParse(part[..split], out var id)
                || !Uri.TryCreate(part[(split + 1)..], UriKind.Absolute, out var url) || url.Scheme != Uri.UriSchemeHttp || url.IsDefaultPort)
            {
                throw new UsageException($"--peers: '{part}' is not id=url (for example n1=http://10.0.0.1:9080)");
            }
            if (!members.TryAdd(id, url.ToString()))
            {
                throw new UsageException($"--peers: {id} is listed twice");
            }
        }
        return members.Count is > 0 and <= 7
            ? ClusterConfig.Create(members.Keys, addresses: members)
            : throw new UsageException("--peers: list 1 to 7 members");
    }
}

internal sealed record SnapshotSaved(string File, string From, ulong Index, ulong Term, string Config, long StateBytes);

internal sealed record SnapshotRestored(string DataDirectory, string Node, string ClusterId, ulong Index, ulong Term, string Config, long StateBytes);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(SnapshotSaved))]
[JsonSerializable(typeof(SnapshotRestored))]
internal sealed partial class SnapshotJson : JsonSerializerContext;
