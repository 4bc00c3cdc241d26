using System.Buffers.Binary;
using RaftKv.RaftCore;

namespace RaftKv.Samples.Counter;

/// <summary>
/// One replicated 64-bit counter. A command is <c>1:u8 delta:i64</c>; its answer is <c>ok:u8 value:i64</c> (the value after
/// adding, or the unchanged value when the command is malformed or would overflow). A query answers <c>1:u8 value:i64</c>.
/// Apply is deterministic, as the runtime requires.
/// </summary>
public sealed class CounterStateMachine : IStateMachine, IStateDigest
{
    public const byte AddCommand = 1;

    private long _value;
    private LogIndex _applied;
    private readonly Lock _gate = new();
    private (long Value, LogIndex Applied) _published; // for Digest, from any thread: both as of one apply

    public static byte[] Add(long delta)
    {
        var command = new byte[9];
        command[0] = AddCommand;
        BinaryPrimitives.WriteInt64LittleEndian(command.AsSpan(1), delta);
        return command;
    }

    /// <summary>Reads an answer: whether the command was applied, and the counter's value.</summary>
    public static (bool Ok, long Value) ReadAnswer(ReadOnlySpan<byte> answer) =>
        answer.Length == 9 ? (answer[0] == 1, BinaryPrimitives.ReadInt64LittleEndian(answer[1..])) : throw new FormatException("not a counter answer");

    public ReadOnlyMemory<byte> Apply(LogEntry entry)
    {
        Invariant.Assert(entry.Index > _applied, $"applied {entry.Index} after {_applied}");
        _applied = entry.Index;
        var data = entry.Data.Span;
        if (data.Length != 9 || data[0] != AddCommand)
        {
            Publish();
            return Answer(ok: false);
        }
        var delta = BinaryPrimitives.ReadInt64LittleEndian(data[1..]);
        try
        {
            _value = checked(_value + delta);
        }
        catch (OverflowException)
        {
            return Answer(ok: false);
        }
        finally
        {
            Publish();
        }
        return Answer(ok: true);
    }

    public ReadOnlyMemory<byte> Query(ReadOnlyMemory<byte> query) => Answer(ok: true);

    public IStateMachineSnapshot CaptureSnapshot() => new Capture(_value, _applied);

    public void Restore(Stream snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        Span<byte> buffer = stackalloc byte[16];
        snapshot.ReadExactly(buffer);
        _value = BinaryPrimitives.ReadInt64LittleEndian(buffer);
        _applied = new LogIndex(BinaryPrimitives.ReadUInt64LittleEndian(buffer[8..]));
        Publish();
    }

    public (ulong Digest, LogIndex Index) Digest()
    {
        lock (_gate)
        {
            return ((ulong)_published.Value, _published.Applied);
        }
    }

    private void Publish()
    {
        lock (_gate)
        {
            _published = (_value, _applied);
        }
    }

    private byte[] Answer(bool ok)
    {
        var answer = new byte[9];
        answer[0] = ok ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteInt64LittleEndian(answer.AsSpan(1), _value);
        return answer;
    }

    private sealed class Capture(long value, LogIndex applied) : IStateMachineSnapshot
    {
        public void WriteTo(Stream destination)
        {
            ArgumentNullException.ThrowIfNull(destination);
            Span<byte> buffer = stackalloc byte[16];
            BinaryPrimitives.WriteInt64LittleEndian(buffer, value);
            BinaryPrimitives.WriteUInt64LittleEndian(buffer[8..], applied.Value);
            destination.Write(buffer);
        }
    }
}
