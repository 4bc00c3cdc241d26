namespace RaftKv.Storage;

/// <summary>
/// A list in fixed-size chunks: appending never copies what is already there (a plain list of millions of entries
/// doubles into the large-object heap), cutting the end and dropping the front are cheap.
/// </summary>
internal sealed class ChunkedList<T>
{
    private const int ChunkSize = 8192;
    private readonly List<T[]> _chunks = [];
    private int _head; // items dropped from the front of the first chunk

    public int Count { get; private set; }

    public T this[int index]
    {
        get
        {
            var position = index + _head;
            return _chunks[position / ChunkSize][position % ChunkSize];
        }
    }

    public void Add(T item)
    {
        var position = Count + _head;
        if (position / ChunkSize == _chunks.Count)
        {
            _chunks.Add(new T[ChunkSize]);
        }
        _chunks[position / ChunkSize][position % ChunkSize] = item;
        Count++;
    }

    /// <summary>Keeps the first <paramref name="count"/> items.</summary>
    public void TruncateTo(int count)
    {
        Count = Math.Min(Count, count);
        var chunksNeeded = (Count + _head + ChunkSize - 1) / ChunkSize;
        if (_chunks.Count > chunksNeeded)
        {
            _chunks.RemoveRange(chunksNeeded, _chunks.Count - chunksNeeded);
        }
    }

    /// <summary>Drops the first <paramref name="count"/> items.</summary>
    public void RemovePrefix(int count)
    {
        count = Math.Min(count, Count);
        _head += count;
        Count -= count;
        var wholeChunks = _head / ChunkSize;
        if (wholeChunks > 0)
        {
            _chunks.RemoveRange(0, Math.Min(wholeChunks, _chunks.Count));
            _head -= wholeChunks * ChunkSize;
        }
    }

    public void Clear()
    {
        _chunks.Clear();
        _head = 0;
        Count = 0;
    }
}
