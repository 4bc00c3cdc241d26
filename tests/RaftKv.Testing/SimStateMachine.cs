using System.Buffers.Binary;
using System.IO.Hashing;
using System.Text;
using RaftKv.RaftCore;

namespace RaftKv.Testing;

/// <summary>
/// A small deterministic state machine for simulations: commands are "key=value" strings. It keeps the map, the index of
/// the last command it applied, and a running hash of every command applied in order, so two nodes that applied the same
/// sequence agree on the hash (a node restored from a snapshot inherits it).
/// </summary>
public sealed class SimStateMachine : IStateMachine
{
    private readonly SortedDictionary<string, string> _map = new(StringComparer.Ordinal);

    public LogIndex LastApplied { get; private set; }

    public ulong Hash { get; private set; }

    public int Count => _map.Count;

    /// <summary>Called with every entry applied (checkers hook in here).</summary>
    public Action<LogEntry>? OnApply { get; set; }

    /// <summary>Applies "key=value"; the answer is the entry's index (8 bytes, little-endian: see <see cref="AppliedIndex"/>).</summary>
    public ReadOnlyMemory<byte> Apply(LogEntry entry)
    {
        Invariant.Assert(entry.Index > LastApplied, $"applied {entry.Index} after {LastApplied}");
        var text = Encoding.UTF8.GetString(entry.Data.Span);
        var split = text.IndexOf('=', StringComparison.Ordinal);
        if (split > 0)
        {
            _map[text[..split]] = text[(split + 1)..];
        }
        LastApplied = entry.Index;
        Hash = Mix(Hash, entry.Index, entry.Data.Span);
        OnApply?.Invoke(entry);
        var answer = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(answer, entry.Index.Value);
        return answer;
    }

    /// <summary>Reads <see cref="Apply"/>'s answer.</summary>
    public static LogIndex AppliedIndex(ReadOnlyMemory<byte> answer) => new(BinaryPrimitives.ReadUInt64LittleEndian(answer.Span));

    /// <summary>A query is a key; the answer carries the applied position so checkers can judge freshness.</summary>
    public ReadOnlyMemory<byte> Query(ReadOnlyMemory<byte> query)
    {
        var key = Encoding.UTF8.GetString(query.Span);
        return new SimReadResult(LastApplied, _map.TryGetValue(key, out var value) ? value : null, Hash).Encode();
    }

    public IStateMachineSnapshot CaptureSnapshot() => new Capture(LastApplied, Hash, [.. _map]);

    public void Restore(Stream snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        using var reader = new BinaryReader(snapshot, Encoding.UTF8, leaveOpen: true);
        LastApplied = new LogIndex(reader.ReadUInt64());
        Hash = reader.ReadUInt64();
        var count = reader.ReadInt32();
        _map.Clear();
        for (var i = 0; i < count; i++)
        {
            var key = reader.ReadString();
            _map[key] = reader.ReadString();
        }
    }

    public static ulong Mix(ulong hash, LogIndex index, ReadOnlySpan<byte> data)
    {
        Span<byte> head = stackalloc byte[16];
        BinaryPrimitives.WriteUInt64LittleEndian(head, hash);
        BinaryPrimitives.WriteUInt64LittleEndian(head[8..], index.Value);
        var hasher = new XxHash64();
        hasher.Append(head);
        hasher.Append(data);
        return hasher.GetCurrentHashAsUInt64();
    }

    private sealed class Capture(LogIndex lastApplied, ulong hash, KeyValuePair<string, string>[] items) : IStateMachineSnapshot
    {
        public void WriteTo(Stream destination)
        {
            using var writer = new BinaryWriter(destination, Encoding.UTF8, leaveOpen: true);
            writer.Write(lastApplied.Value);
            writer.Write(hash);
            writer.Write(items.Length);
            foreach (var (key, value) in items)
            {
                writer.Write(key);
                writer.Write(value);
            }
        }
    }
}

/// <summary>A read's answer: <c>lastApplied:u64 hash:u64 value</c> (UTF-8; absent when the key is not there).</summary>
public sealed record SimReadResult(LogIndex LastApplied, string? Value, ulong Hash)
{
    public byte[] Encode()
    {
        var value = Value is null ? [] : Encoding.UTF8.GetBytes(Value);
        var buffer = new byte[17 + value.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(buffer, LastApplied.Value);
        BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(8), Hash);
        buffer[16] = Value is null ? (byte)0 : (byte)1;
        value.CopyTo(buffer.AsSpan(17));
        return buffer;
    }

    public static SimReadResult Decode(ReadOnlyMemory<byte> answer)
    {
        var span = answer.Span;
        return new SimReadResult(new LogIndex(BinaryPrimitives.ReadUInt64LittleEndian(span)), span[16] == 0 ? null : Encoding.UTF8.GetString(span[17..]),
            BinaryPrimitives.ReadUInt64LittleEndian(span[8..]));
    }
}
