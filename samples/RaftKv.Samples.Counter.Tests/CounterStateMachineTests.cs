using RaftKv.RaftCore;

namespace RaftKv.Samples.Counter.Tests;

public sealed class CounterStateMachineTests
{
    private ulong _index;

    private (bool Ok, long Value) Apply(CounterStateMachine machine, byte[] command) =>
        CounterStateMachine.ReadAnswer(machine.Apply(new LogEntry(new LogIndex(++_index), new Term(1), EntryKind.Normal, command)).Span);

    [Fact]
    public void Adds_accumulate_and_a_query_reads_the_sum()
    {
        var machine = new CounterStateMachine();

        Apply(machine, CounterStateMachine.Add(5)).Should().Be((true, 5L));
        Apply(machine, CounterStateMachine.Add(-2)).Should().Be((true, 3L));

        CounterStateMachine.ReadAnswer(machine.Query(ReadOnlyMemory<byte>.Empty).Span).Should().Be((true, 3L));
    }

    [Fact]
    public void A_malformed_command_or_an_overflow_is_answered_and_changes_nothing()
    {
        var machine = new CounterStateMachine();
        Apply(machine, CounterStateMachine.Add(long.MaxValue));

        Apply(machine, [9, 9]).Should().Be((false, long.MaxValue));
        Apply(machine, CounterStateMachine.Add(1)).Should().Be((false, long.MaxValue));
    }

    [Fact]
    public void A_snapshot_restores_the_value_and_the_applied_index()
    {
        var machine = new CounterStateMachine();
        Apply(machine, CounterStateMachine.Add(41));
        using var stream = new MemoryStream();
        machine.CaptureSnapshot().WriteTo(stream);

        var restored = new CounterStateMachine();
        stream.Position = 0;
        restored.Restore(stream);

        restored.Digest().Should().Be(machine.Digest());
        CounterStateMachine.ReadAnswer(restored.Query(ReadOnlyMemory<byte>.Empty).Span).Value.Should().Be(41);
    }
}
