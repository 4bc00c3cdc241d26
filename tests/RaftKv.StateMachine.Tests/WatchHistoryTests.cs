namespace RaftKv.StateMachine.Tests;

/// <summary>The ring of recent changes that watchers read: in order, from any position, and "gone" once overwritten.</summary>
public sealed class WatchHistoryTests
{
    private static WatchEvent Put(ulong revision, string key, int sequence = 0) => new(revision, sequence, WatchEventType.Put, key, "v", null);

    [Fact]
    public void A_reader_gets_what_follows_its_position_that_matches_and_moves_past_what_does_not()
    {
        var history = new WatchHistory(8);
        history.Append([Put(1, "a")]);
        history.Append([Put(2, "b"), Put(2, "a", 1)]);
        history.Append([Put(3, "b")]);
        (ulong, int) position = (1, int.MaxValue);

        var events = history.After(ref position, e => e.Key == "a", 10, out var changed);

        events!.Select(e => e.Id).Should().Equal("2.1");
        position.Should().Be((3UL, 0), "it looked at everything after revision 1");
        changed.IsCompleted.Should().BeFalse();
        history.Append([Put(4, "a")]);
        changed.IsCompleted.Should().BeTrue("an append wakes the readers");
        history.After(ref position, e => e.Key == "a", 10, out _)!.Select(e => e.Id).Should().Equal("4.0");
    }

    [Fact]
    public void Past_its_capacity_the_oldest_changes_are_gone_and_a_reader_behind_them_gets_null()
    {
        var history = new WatchHistory(4);
        for (var revision = 1UL; revision <= 6; revision++)
        {
            history.Append([Put(revision, "k")]);
        }
        (ulong, int) behind = (1, int.MaxValue);
        (ulong, int) atTheEdge = (2, int.MaxValue);

        history.CompactedThrough.Should().Be(2);
        history.After(ref behind, _ => true, 10, out _).Should().BeNull();
        history.After(ref atTheEdge, _ => true, 10, out _)!.Select(e => e.Revision).Should().Equal(3UL, 4UL, 5UL, 6UL);
    }

    [Fact]
    public void A_restored_snapshot_empties_the_history_up_to_its_revision()
    {
        var history = new WatchHistory(4);
        history.Append([Put(1, "k")]);

        history.Reset(10);

        (ulong, int) before = (5, int.MaxValue);
        (ulong, int) after = (10, int.MaxValue);
        history.After(ref before, _ => true, 10, out _).Should().BeNull();
        history.After(ref after, _ => true, 10, out _).Should().BeEmpty();
    }

    [Fact]
    public void The_state_machine_records_puts_deletes_and_a_transactions_changes_with_their_previous_values()
    {
        var machine = new KvStateMachine();
        var index = 0UL;
        void Apply(byte[] data) => machine.Apply(new RaftCore.LogEntry(new RaftCore.LogIndex(++index), new RaftCore.Term(1), RaftCore.EntryKind.Normal, data));
        Apply(new KvCommand(KvOperation.Set, "k", "1").Encode());
        Apply(new KvCommand(KvOperation.Delete, "absent").Encode()); // changes nothing: no event
        Apply(new KvTxn([], [new KvTxnOp(KvTxnOpKind.Put, "k", "2"), new KvTxnOp(KvTxnOpKind.Delete, "k"), new KvTxnOp(KvTxnOpKind.Get, "k")], []).Encode());
        (ulong, int) start = (0, int.MaxValue);

        var events = machine.History.After(ref start, _ => true, 10, out _)!;

        events.Select(e => (e.Id, e.Type, e.Value, e.PreviousValue)).Should().Equal(
            ("1.0", WatchEventType.Put, "1", null), ("3.0", WatchEventType.Put, "2", "1"), ("3.1", WatchEventType.Delete, null, "2"));
    }
}
