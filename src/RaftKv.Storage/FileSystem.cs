using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace RaftKv.Storage;

/// <summary>
/// The file operations storage needs, and no more, so that the simulator can run the real write-ahead log on a disk
/// that loses unsynced writes, tears the last one, flips bits and fails fsyncs. Paths are relative to the store's folder.
/// </summary>
public interface IFileSystem
{
    IReadOnlyList<string> List(string directory);

    bool Exists(string path);

    void CreateDirectory(string directory);

    /// <summary>Opens a file for reading and writing, creating it if <paramref name="create"/>.</summary>
    IStorageFile Open(string path, bool create);

    void Delete(string path);

    /// <summary>Renames over an existing file atomically (rename(2)); durable only after <see cref="SyncDirectory"/>.</summary>
    void Rename(string from, string to);

    /// <summary>Makes creations, renames and deletions in the directory durable (fsync on the directory).</summary>
    void SyncDirectory(string directory);
}

public interface IStorageFile : IDisposable
{
    string Path { get; }

    long Length { get; }

    /// <summary>Reads up to buffer.Length bytes at <paramref name="offset"/>; returns how many were read (0 at the end).</summary>
    int Read(long offset, Span<byte> buffer);

    void Write(long offset, ReadOnlySpan<byte> data);

    void SetLength(long length);

    /// <summary>
    /// Every earlier write to this file, and its length, is durable when it returns: fdatasync on Linux, which leaves out
    /// only the timestamps (fsync elsewhere). Throws <see cref="IOException"/> on failure.
    /// </summary>
    void Sync();
}

/// <summary>The real disk: pread/pwrite through <see cref="RandomAccess"/>, fdatasync (fsync off Linux), and fsync on directories.</summary>
public sealed partial class PhysicalFileSystem(string root) : IFileSystem
{
    public string Root { get; } = System.IO.Path.GetFullPath(root);

    public IReadOnlyList<string> List(string directory)
    {
        var full = Full(directory);
        return Directory.Exists(full)
            ? [.. Directory.EnumerateFiles(full).Select(System.IO.Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal)]
            : [];
    }

    public bool Exists(string path) => File.Exists(Full(path));

    public void CreateDirectory(string directory) => Directory.CreateDirectory(Full(directory));

    public IStorageFile Open(string path, bool create) =>
        new PhysicalFile(path, File.OpenHandle(Full(path), create ? FileMode.OpenOrCreate : FileMode.Open, FileAccess.ReadWrite, FileShare.Read));

    public void Delete(string path) => File.Delete(Full(path));

    public void Rename(string from, string to) => File.Move(Full(from), Full(to), overwrite: true);

    public void SyncDirectory(string directory)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return; // directory fsync is a POSIX notion
        }
        var fd = Open(Full(directory), 0 /* O_RDONLY */);
        if (fd < 0)
        {
            throw new IOException($"cannot open directory {Full(directory)} to fsync it (errno {Marshal.GetLastPInvokeError()})");
        }
        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory {Full(directory)} failed (errno {Marshal.GetLastPInvokeError()})");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    private string Full(string path) => System.IO.Path.Combine(Root, path);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    private static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    private static partial int Fdatasync(SafeFileHandle fd);

    private sealed class PhysicalFile(string path, SafeFileHandle handle) : IStorageFile
    {
        public string Path { get; } = path;

        public long Length => RandomAccess.GetLength(handle);

        public int Read(long offset, Span<byte> buffer)
        {
            var total = 0;
            while (total < buffer.Length)
            {
                var read = RandomAccess.Read(handle, buffer[total..], offset + total);
                if (read == 0)
                {
                    break;
                }
                total += read;
            }
            return total;
        }

        public void Write(long offset, ReadOnlySpan<byte> data) => RandomAccess.Write(handle, data, offset);

        public void SetLength(long length) => RandomAccess.SetLength(handle, length);

        public void Sync()
        {
            if (!OperatingSystem.IsLinux())
            {
                RandomAccess.FlushToDisk(handle);
                return;
            }
            // The timestamps are all fsync would add: a changed length, or blocks newly allocated, are flushed as well.
            if (Fdatasync(handle) != 0)
            {
                throw new IOException($"fdatasync of {Path} failed (errno {Marshal.GetLastPInvokeError()})");
            }
        }

        public void Dispose() => handle.Dispose();
    }
}
