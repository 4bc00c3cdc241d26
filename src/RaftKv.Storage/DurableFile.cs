using RaftKv.RaftCore;

namespace RaftKv.Storage;

/// <summary>Small files replaced whole and durably: written beside, fsynced, renamed over, and the directory fsynced.</summary>
public static class DurableFile
{
    public const string TempSuffix = ".tmp";

    /// <summary>After it returns, <paramref name="name"/> holds <paramref name="content"/>, or (after a crash) its old content: never a mix.</summary>
    public static void Replace(IFileSystem files, string name, ReadOnlySpan<byte> content)
    {
        ArgumentNullException.ThrowIfNull(files);
        var temporary = name + TempSuffix;
        using (var file = files.Open(temporary, create: true))
        {
            file.SetLength(0);
            file.Write(0, content);
            file.Sync();
        }
        files.Rename(temporary, name);
        files.SyncDirectory(Path.GetDirectoryName(name) ?? "");
    }

    /// <summary>The whole file, or null if it does not exist.</summary>
    public static byte[]? ReadAll(IFileSystem files, string name)
    {
        ArgumentNullException.ThrowIfNull(files);
        if (!files.Exists(name))
        {
            return null;
        }
        using var file = files.Open(name, create: false);
        var content = new byte[checked((int)file.Length)];
        var read = 0;
        while (read < content.Length)
        {
            var n = file.Read(read, content.AsSpan(read));
            if (n == 0)
            {
                throw new StorageException($"{file.Path}: ended at {read} of {content.Length} bytes");
            }
            read += n;
        }
        return content;
    }
}
