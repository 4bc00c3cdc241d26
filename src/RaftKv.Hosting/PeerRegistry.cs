using System.Text;
using RaftKv.RaftCore;
using RaftKv.Storage;

namespace RaftKv.Hosting;

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

    /// <summary>The incarnation recorded for <paramref name="node"/>, or 0 if this node has not heard from it.</summary>
    public ulong Known(NodeId node) => Volatile.Read(ref _seen).GetValueOrDefault(node);

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
