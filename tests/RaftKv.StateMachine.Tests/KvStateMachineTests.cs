using RaftKv.RaftCore;

namespace RaftKv.StateMachine.Tests;

public sealed class KvStateMachineTests
{
    private ulong _index;

    private KvResult Apply(KvStateMachine machine, KvCommand command) =>
        KvResult.Decode(machine.Apply(new LogEntry(new LogIndex(++_index), new Term(1), EntryKind.Normal, command.Encode())).Span);

    private static KvResult Read(KvStateMachine machine, string key) =>
        KvResult.Decode(machine.Query(new KvCommand(KvOperation.Get, key).Encode()).Span);

    [Fact]
    public void Every_key_carries_the_index_that_last_wrote_it()
    {
        var machine = new KvStateMachine();

        var first = Apply(machine, new KvCommand(KvOperation.Set, "k", "a"));
        Apply(machine, new KvCommand(KvOperation.Set, "other", "x"));
        var second = Apply(machine, new KvCommand(KvOperation.Set, "k", "b"));

        first.Version.Should().Be(1);
        second.Version.Should().Be(3);
        Read(machine, "k").Should().BeEquivalentTo(new { Found = true, Value = "b", Version = 3UL });
    }

    [Theory]
    // current value (null: absent), expected, expectedVersion, matches
    [InlineData(null, null, 0UL, true)]
    [InlineData("v", null, 0UL, false)]
    [InlineData("v", "v", null, true)]
    [InlineData("v", "w", null, false)]
    [InlineData(null, "v", null, false)]
    [InlineData("v", null, 1UL, true)]
    [InlineData("v", null, 2UL, false)]
    public void Cas_compares_against_the_value_or_the_version(string? current, string? expected, ulong? expectedVersion, bool matches)
    {
        var machine = new KvStateMachine();
        if (current is not null)
        {
            Apply(machine, new KvCommand(KvOperation.Set, "k", current));
        }

        var result = Apply(machine, new KvCommand(KvOperation.Cas, "k", "new", expected, expectedVersion));

        result.Ok.Should().Be(matches);
        result.Error.Should().Be(matches ? KvError.None : KvError.CasMismatch);
        Read(machine, "k").Value.Should().Be(matches ? "new" : current);
    }

    [Fact]
    public void A_retried_write_gets_the_saved_answer_and_is_not_applied_again()
    {
        var machine = new KvStateMachine();
        var write = new KvCommand(KvOperation.Set, "k", "first", ClientId: "c", Sequence: 1);

        var original = Apply(machine, write);
        Apply(machine, new KvCommand(KvOperation.Set, "k", "second"));
        var retry = Apply(machine, write);

        retry.Should().Be(original);
        Read(machine, "k").Value.Should().Be("second");
        Apply(machine, write with { Sequence = 0 }).Error.Should().Be(KvError.StaleSequence);
    }

    [Fact]
    public void Sessions_expire_by_log_index_and_are_bounded_the_same_way_on_every_node()
    {
        var options = new KvOptions { MaxSessions = 10, SessionExpiryIndexes = 2_000 };
        var machines = new[] { new KvStateMachine(options), new KvStateMachine(options) };
        foreach (var machine in machines)
        {
            _index = 0;
            for (var i = 0; i < 50; i++)
            {
                Apply(machine, new KvCommand(KvOperation.Set, "k", "v", ClientId: $"client-{i}", Sequence: 1));
            }
        }

        machines[0].SessionCount.Should().BeLessThanOrEqualTo(10);
        machines[0].Digest().Should().Be(machines[1].Digest(), "eviction is deterministic");

        _index = 0;
        var aging = new KvStateMachine(options);
        Apply(aging, new KvCommand(KvOperation.Set, "k", "v", ClientId: "old", Sequence: 1));
        for (var i = 0; i < 4_096; i++)
        {
            Apply(aging, new KvCommand(KvOperation.Set, "k", "v"));
        }
        aging.SessionCount.Should().Be(0, "a session unused for 2,000 indexes expires");
    }

    [Fact]
    public void A_snapshot_restores_the_same_map_and_sessions()
    {
        var machine = new KvStateMachine();
        Apply(machine, new KvCommand(KvOperation.Set, "a", "1"));
        Apply(machine, new KvCommand(KvOperation.Set, "b", "2", ClientId: "c", Sequence: 7));
        Apply(machine, new KvCommand(KvOperation.Delete, "a"));
        using var stream = new MemoryStream();
        machine.CaptureSnapshot().WriteTo(stream);
        stream.Position = 0;

        var restored = new KvStateMachine();
        restored.Restore(stream);

        restored.Digest().Should().Be(machine.Digest());
        Read(restored, "b").Value.Should().Be("2");
        Read(restored, "a").Found.Should().BeFalse();
        Apply(restored, new KvCommand(KvOperation.Set, "b", "x", ClientId: "c", Sequence: 7)).Version.Should().Be(2, "the session came with the snapshot");
    }

    [Fact]
    public void A_capture_does_not_change_while_applies_go_on()
    {
        var machine = new KvStateMachine();
        Apply(machine, new KvCommand(KvOperation.Set, "a", "1"));
        var capture = machine.CaptureSnapshot();

        Apply(machine, new KvCommand(KvOperation.Set, "a", "2"));
        using var stream = new MemoryStream();
        capture.WriteTo(stream);
        stream.Position = 0;
        var restored = new KvStateMachine();
        restored.Restore(stream);

        Read(restored, "a").Value.Should().Be("1");
    }

    [Fact]
    public void Bytes_that_are_not_a_command_are_answered_as_malformed_on_every_node()
    {
        var machine = new KvStateMachine();

        var result = KvResult.Decode(machine.Apply(new LogEntry(new LogIndex(1), new Term(1), EntryKind.Normal, new byte[] { 9, 9, 9 })).Span);

        result.Error.Should().Be(KvError.Malformed);
        machine.Count.Should().Be(0);
    }

    [Theory]
    [InlineData(KvOperation.Set, "key", "value", null, null, "c", 3UL)]
    [InlineData(KvOperation.Cas, "k", "v", "old", 12UL, null, 0UL)]
    [InlineData(KvOperation.Delete, "ключ/ü", null, null, null, null, 0UL)]
    [InlineData(KvOperation.Get, "", null, null, null, null, 0UL)]
    public void A_command_round_trips_through_its_encoding(KvOperation operation, string key, string? value, string? expected, ulong? version, string? client, ulong seq)
    {
        var command = new KvCommand(operation, key, value, expected, version, client, seq);

        KvCommand.Decode(command.Encode()).Should().Be(command);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 1, 9, 0 })]
    [InlineData(new byte[] { 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 })]
    public void Damaged_command_bytes_are_refused(byte[] data)
    {
        var decode = () => KvCommand.Decode(data);

        decode.Should().Throw<FormatException>();
    }

    [Fact]
    public void A_query_that_is_not_a_command_is_answered_as_malformed_and_changes_nothing()
    {
        var machine = new KvStateMachine();
        Apply(machine, new KvCommand(KvOperation.Set, "k", "v"));

        var result = KvResult.Decode(machine.Query(new byte[] { 7, 7 }).Span);

        result.Error.Should().Be(KvError.Malformed);
        Read(machine, "k").Value.Should().Be("v");
    }

    [Theory]
    [InlineData(true, KvError.None, true, "value", 7UL, 9UL)]
    [InlineData(false, KvError.CasMismatch, true, "ключ/ü", 3UL, 4UL)]
    [InlineData(true, KvError.None, false, null, 0UL, 12UL)]
    [InlineData(true, KvError.None, true, "", 5UL, 5UL)]
    public void A_result_round_trips_through_its_encoding(bool ok, KvError error, bool found, string? value, ulong version, ulong index)
    {
        var result = new KvResult(ok, error, found, value, version, index);

        KvResult.Decode(result.Encode()).Should().Be(result);
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 65 })]
    [InlineData(new byte[] { 2, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255 })]
    public void Damaged_result_bytes_are_refused(byte[] data)
    {
        var decode = () => KvResult.Decode(data);

        decode.Should().Throw<FormatException>();
    }
}
