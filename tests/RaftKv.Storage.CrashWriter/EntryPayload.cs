using System.Text;
using RaftKv.RaftCore;

namespace RaftKv.Storage.CrashWriter;

/// <summary>The 128 bytes the writer stores at an index; the test recomputes them to check what it reads back.</summary>
public static class EntryPayload
{
    public static byte[] For(LogIndex index)
    {
        var text = $"entry {index.Value} ";
        var bytes = new byte[128];
        for (var i = 0; i < bytes.Length; i++)
        {
            bytes[i] = (byte)text[i % text.Length];
        }
        return bytes;
    }

    public static string Describe(ReadOnlySpan<byte> data) => Encoding.ASCII.GetString(data[..Math.Min(16, data.Length)]);
}
