using System.Runtime.InteropServices;
using RaftKv.Storage;

namespace RaftKv.Testing;

/// <summary>
/// A disk in memory that behaves like a POSIX file system under power loss. Writes, truncations and directory changes
/// (create, rename, delete) take effect at once in what readers see, but reach the "platter" only when the file (or, for
/// names, the directory) is fsynced. <see cref="Crash"/> keeps what was synced plus a random prefix of what was not, and
/// the last write it keeps may be torn: a prefix of it lands, or, when it overwrites bytes already on the platter, any
/// subset of its 512-byte sectors. An fsync can be made to fail (EIO), after which the writes it covered are gone
/// at the next crash, as with Linux's page cache after a failed fsync. Bits can be flipped in what is on the platter.
/// </summary>
public sealed class SimFileSystem : IFileSystem
{
    private readonly Dictionary<string, FileData> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, FileData> _durableNames = new(StringComparer.Ordinal);
    private readonly List<Action<Dictionary<string, FileData>>> _pendingNames = [];

    /// <summary>The next fsync of a file throws <see cref="IOException"/> (EIO).</summary>
    public bool FailNextSync { get; set; }

    /// <summary>The next fsync of a file throws <see cref="SimulatedCrashException"/> before anything reaches the platter.</summary>
    public bool CrashOnNextSync { get; set; }

    public int Syncs { get; private set; }

    public IReadOnlyList<string> List(string directory)
    {
        var prefix = directory.Length == 0 ? "" : directory.TrimEnd('/') + "/";
        return [.. _names.Keys
            .Where(n => n.StartsWith(prefix, StringComparison.Ordinal) && n.IndexOf('/', prefix.Length) < 0)
            .Select(n => n[prefix.Length..])
            .Order(StringComparer.Ordinal)];
    }

    public bool Exists(string path) => _names.ContainsKey(Normalize(path));

    public void CreateDirectory(string directory)
    {
        // Directories are implied by the names of the files in them.
    }

    public IStorageFile Open(string path, bool create)
    {
        path = Normalize(path);
        if (!_names.TryGetValue(path, out var data))
        {
            if (!create)
            {
                throw new FileNotFoundException($"simulated disk: no file {path}", path);
            }
            data = new FileData();
            ChangeNames(names => names[path] = data);
        }
        return new Handle(this, path, data);
    }

    public void Delete(string path)
    {
        path = Normalize(path);
        ChangeNames(names => names.Remove(path));
    }

    public void Rename(string from, string to)
    {
        from = Normalize(from);
        to = Normalize(to);
        if (!_names.ContainsKey(from))
        {
            throw new FileNotFoundException($"simulated disk: no file {from}", from);
        }
        ChangeNames(names =>
        {
            if (names.Remove(from, out var data))
            {
                names[to] = data;
            }
        });
    }

    public void SyncDirectory(string directory)
    {
        foreach (var change in _pendingNames)
        {
            change(_durableNames);
        }
        _pendingNames.Clear();
    }

    /// <summary>
    /// Power fails. Every file keeps its synced bytes plus a random prefix of its unsynced writes, the last of which may be
    /// torn; the directory keeps its synced names plus a random prefix of later changes. Readers then see only that.
    /// </summary>
    public void Crash(Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        foreach (var data in _names.Values.Concat(_durableNames.Values).Distinct())
        {
            data.Crash(random);
        }
        var keep = random.Next(_pendingNames.Count + 1);
        for (var i = 0; i < keep; i++)
        {
            _pendingNames[i](_durableNames);
        }
        _pendingNames.Clear();
        _names.Clear();
        foreach (var (name, data) in _durableNames)
        {
            _names[name] = data;
        }
        FailNextSync = false;
        CrashOnNextSync = false;
    }

    /// <summary>Flips one bit of what is on the platter (and what readers see) at <paramref name="offset"/>.</summary>
    public void FlipBit(string path, long offset, int bit)
    {
        var data = _names[Normalize(path)];
        data.FlipBit(offset, bit);
    }

    /// <summary>The bytes a reader sees now.</summary>
    public byte[] ReadAll(string path) => [.. _names[Normalize(path)].Current];

    public long DurableLength(string path) => _names[Normalize(path)].Durable.Count;

    private void ChangeNames(Action<Dictionary<string, FileData>> change)
    {
        change(_names);
        _pendingNames.Add(change);
    }

    private static string Normalize(string path) => path.Replace('\\', '/').TrimStart('/');

    private sealed class FileData
    {
        // Each pending write applies to a byte list; kept in order until the next fsync.
        private readonly List<PendingWrite> _pending = [];

        public List<byte> Durable { get; } = [];

        public List<byte> Current { get; private set; } = [];

        public void Write(long offset, ReadOnlySpan<byte> bytes)
        {
            var write = new PendingWrite(offset, bytes.ToArray(), null);
            Apply(Current, write, write.Bytes!.Length);
            _pending.Add(write);
        }

        public void SetLength(long length)
        {
            var write = new PendingWrite(0, null, length);
            Apply(Current, write, 0);
            _pending.Add(write);
        }

        public void Sync()
        {
            foreach (var write in _pending)
            {
                Apply(Durable, write, write.Bytes?.Length ?? 0);
            }
            _pending.Clear();
        }

        private void ApplySomeSectors(PendingWrite write, Random random)
        {
            const int sector = 512;
            var end = write.Offset + write.Bytes!.Length;
            for (var start = write.Offset / sector * sector; start < end; start += sector)
            {
                if (random.Next(2) == 0)
                {
                    continue;
                }
                var from = Math.Max(start, write.Offset);
                var to = Math.Min(start + sector, end);
                write.Bytes.AsSpan((int)(from - write.Offset), (int)(to - from)).CopyTo(CollectionsMarshal.AsSpan(Durable)[(int)from..]);
            }
        }

        /// <summary>After a failed fsync the kernel may have dropped these pages: they never reach the platter.</summary>
        public void DropPending() => _pending.Clear();

        public void Crash(Random random)
        {
            var keep = random.Next(_pending.Count + 1);
            for (var i = 0; i < keep; i++)
            {
                var write = _pending[i];
                var bytes = write.Bytes?.Length ?? 0;
                if (i == keep - 1 && bytes > 0 && write.Offset + bytes <= Durable.Count && random.Next(2) == 0)
                {
                    // An overwrite of bytes already on the platter (a preallocated file's zeros) is not ordered by a change
                    // of length: its sectors land in any order, and any of them may not land at all.
                    ApplySomeSectors(write, random);
                    continue;
                }
                // The last write that reaches the platter may be torn: only a prefix of it lands.
                var torn = i == keep - 1 && bytes > 0 && random.Next(2) == 0 ? random.Next(bytes) : bytes;
                Apply(Durable, write, torn);
            }
            _pending.Clear();
            Current = [.. Durable];
        }

        public void FlipBit(long offset, int bit)
        {
            Durable[(int)offset] ^= (byte)(1 << bit);
            if (offset < Current.Count)
            {
                Current[(int)offset] ^= (byte)(1 << bit);
            }
        }

        private static void Apply(List<byte> target, PendingWrite write, int bytesToApply)
        {
            if (write.NewLength is { } length)
            {
                if (length < target.Count)
                {
                    target.RemoveRange((int)length, target.Count - (int)length);
                }
                else
                {
                    var old = target.Count;
                    CollectionsMarshal.SetCount(target, (int)length);
                    CollectionsMarshal.AsSpan(target)[old..].Clear();
                }
                return;
            }
            var end = write.Offset + bytesToApply;
            if (end > target.Count)
            {
                CollectionsMarshal.SetCount(target, (int)end);
            }
            write.Bytes.AsSpan(0, bytesToApply).CopyTo(CollectionsMarshal.AsSpan(target)[(int)write.Offset..]);
        }

        private sealed record PendingWrite(long Offset, byte[]? Bytes, long? NewLength);
    }

    private sealed class Handle(SimFileSystem disk, string path, FileData data) : IStorageFile
    {
        public string Path { get; } = path;

        public long Length => data.Current.Count;

        public int Read(long offset, Span<byte> buffer)
        {
            var count = (int)Math.Max(0, Math.Min(buffer.Length, data.Current.Count - offset));
            CollectionsMarshal.AsSpan(data.Current).Slice((int)offset, count).CopyTo(buffer);
            return count;
        }

        public void Write(long offset, ReadOnlySpan<byte> bytes) => data.Write(offset, bytes);

        public void SetLength(long length) => data.SetLength(length);

        public void Sync()
        {
            if (disk.CrashOnNextSync)
            {
                disk.CrashOnNextSync = false;
                throw new SimulatedCrashException("crash during fsync of " + Path);
            }
            if (disk.FailNextSync)
            {
                disk.FailNextSync = false;
                data.DropPending();
                throw new IOException($"simulated fsync failure (EIO) on {Path}");
            }
            data.Sync();
            disk.Syncs++;
        }

        public void Dispose()
        {
        }
    }
}
