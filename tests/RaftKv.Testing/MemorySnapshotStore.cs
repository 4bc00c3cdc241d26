using RaftKv.RaftCore;

namespace RaftKv.Testing;

/// <summary>Snapshots kept in memory; a committed snapshot is durable (it survives a simulated crash).</summary>
public sealed class MemorySnapshotStore(int retain = 3) : ISnapshotStore
{
    private readonly SortedDictionary<(ulong Index, ulong Term), (SnapshotMetadata Metadata, byte[] Data)> _snapshots = [];

    public SnapshotMetadata? Latest => _snapshots.Count == 0 ? null : _snapshots.Last().Value.Metadata;

    public int Count => _snapshots.Count;

    public ISnapshotWriter Create(SnapshotMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        return new Writer(this, metadata);
    }

    public Stream OpenRead(SnapshotMetadata metadata)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        if (!_snapshots.TryGetValue(Key(metadata), out var snapshot))
        {
            throw new StorageException($"snapshot {metadata.Index}/{metadata.Term} not found");
        }
        return new MemoryStream(snapshot.Data, writable: false);
    }

    public bool TryGetBytes(SnapshotMetadata metadata, out byte[] data)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        var found = _snapshots.TryGetValue(Key(metadata), out var snapshot);
        data = found ? snapshot.Data : [];
        return found;
    }

    /// <summary>Stores a snapshot received from elsewhere (what a transport does with InstallSnapshot's chunks).</summary>
    public void Put(SnapshotMetadata metadata, byte[] data)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        _snapshots[Key(metadata)] = (metadata, data);
        while (_snapshots.Count > retain)
        {
            _snapshots.Remove(_snapshots.First().Key);
        }
    }

    private static (ulong, ulong) Key(SnapshotMetadata metadata) => (metadata.Index.Value, metadata.Term.Value);

    private sealed class Writer(MemorySnapshotStore store, SnapshotMetadata metadata) : ISnapshotWriter
    {
        private readonly MemoryStream _stream = new();

        public Stream Stream => _stream;

        public void Commit() => store.Put(metadata, _stream.ToArray());

        public void Dispose() => _stream.Dispose();
    }
}
