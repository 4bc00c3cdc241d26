using RaftKv.RaftCore;

namespace RaftKv.StateMachine.Tests;

/// <summary>Transactions: comparisons against the state before them, one branch applied whole, sessions, snapshots.</summary>
public sealed class KvTxnTests
{
    private ulong _index;

    private ReadOnlyMemory<byte> Apply(KvStateMachine machine, byte[] data) =>
        machine.Apply(new LogEntry(new LogIndex(++_index), new Term(1), EntryKind.Normal, data));

    private KvTxnResult Txn(KvStateMachine machine, KvTxn txn) => KvTxnResult.Decode(Apply(machine, txn.Encode()).Span);

    private void Set(KvStateMachine machine, string key, string value) => Apply(machine, new KvCommand(KvOperation.Set, key, value).Encode());

    private static KvCompare Exists(string key, bool exists) => new(key, KvCompareTarget.Exists, KvCompareOp.Equal, null, exists ? 1UL : 0UL);

    [Fact]
    public void A_lock_is_taken_only_while_nobody_holds_it()
    {
        var machine = new KvStateMachine();
        var take = (string owner) => new KvTxn([Exists("lock", false)], [new KvTxnOp(KvTxnOpKind.Put, "lock", owner)], [new KvTxnOp(KvTxnOpKind.Get, "lock")]);

        var first = Txn(machine, take("a"));
        var second = Txn(machine, take("b"));

        first.Succeeded.Should().BeTrue();
        first.Results.Should().ContainSingle().Which.Should().Be(new KvTxnOpResult(KvTxnOpKind.Put, "lock", true, null, 1, 1));
        second.Succeeded.Should().BeFalse();
        second.Results.Should().ContainSingle().Which.Should().Be(new KvTxnOpResult(KvTxnOpKind.Get, "lock", true, "a", 1, 1));
    }

    [Theory]
    [InlineData(KvCompareTarget.Value, KvCompareOp.Equal, "v", 0UL, true)]
    [InlineData(KvCompareTarget.Value, KvCompareOp.NotEqual, "v", 0UL, false)]
    [InlineData(KvCompareTarget.Value, KvCompareOp.Less, "w", 0UL, true)]
    [InlineData(KvCompareTarget.Value, KvCompareOp.Greater, "w", 0UL, false)]
    [InlineData(KvCompareTarget.Version, KvCompareOp.Equal, null, 2UL, true)]
    [InlineData(KvCompareTarget.Version, KvCompareOp.Greater, null, 1UL, true)]
    [InlineData(KvCompareTarget.Version, KvCompareOp.Less, null, 2UL, false)]
    [InlineData(KvCompareTarget.CreateRevision, KvCompareOp.Equal, null, 1UL, true)]
    [InlineData(KvCompareTarget.CreateRevision, KvCompareOp.NotEqual, null, 2UL, true)]
    [InlineData(KvCompareTarget.Exists, KvCompareOp.Equal, null, 1UL, true)]
    [InlineData(KvCompareTarget.Exists, KvCompareOp.NotEqual, null, 1UL, false)]
    public void A_comparison_holds_as_its_target_and_operator_say(KvCompareTarget target, KvCompareOp op, string? value, ulong number, bool holds)
    {
        var machine = new KvStateMachine();
        Set(machine, "k", "first"); // created at 1
        Set(machine, "k", "v"); // version 2

        var result = Txn(machine, new KvTxn([new KvCompare("k", target, op, value, number)], [], []));

        result.Succeeded.Should().Be(holds);
    }

    [Fact]
    public void An_absent_key_has_version_and_create_revision_zero_and_no_value()
    {
        var machine = new KvStateMachine();

        Txn(machine, new KvTxn([new KvCompare("none", KvCompareTarget.Version, KvCompareOp.Equal, null, 0)], [], [])).Succeeded.Should().BeTrue();
        Txn(machine, new KvTxn([new KvCompare("none", KvCompareTarget.CreateRevision, KvCompareOp.Equal, null, 0)], [], [])).Succeeded.Should().BeTrue();
        Txn(machine, new KvTxn([new KvCompare("none", KvCompareTarget.Value, KvCompareOp.Equal, "", 0)], [], [])).Succeeded.Should().BeFalse();
        Txn(machine, new KvTxn([new KvCompare("none", KvCompareTarget.Value, KvCompareOp.NotEqual, "", 0)], [], [])).Succeeded.Should().BeTrue();
    }

    [Fact]
    public void Every_comparison_must_hold_and_the_branch_runs_in_order_as_one_write()
    {
        var machine = new KvStateMachine();
        Set(machine, "a", "1");
        Set(machine, "b", "2");

        var result = Txn(machine, new KvTxn(
            [new KvCompare("a", KvCompareTarget.Value, KvCompareOp.Equal, "1", 0), new KvCompare("b", KvCompareTarget.Value, KvCompareOp.Equal, "2", 0)],
            [new KvTxnOp(KvTxnOpKind.Put, "a", "10"), new KvTxnOp(KvTxnOpKind.Delete, "b"), new KvTxnOp(KvTxnOpKind.Get, "a"), new KvTxnOp(KvTxnOpKind.Get, "b")],
            []));
        var failed = Txn(machine, new KvTxn(
            [new KvCompare("a", KvCompareTarget.Value, KvCompareOp.Equal, "10", 0), new KvCompare("b", KvCompareTarget.Exists, KvCompareOp.Equal, null, 1)],
            [new KvTxnOp(KvTxnOpKind.Delete, "a")],
            [new KvTxnOp(KvTxnOpKind.Put, "c", "3")]));

        result.Succeeded.Should().BeTrue();
        result.Results.Select(r => (r.Kind, r.Key, r.Found, r.Value)).Should().Equal(
            (KvTxnOpKind.Put, "a", true, null), (KvTxnOpKind.Delete, "b", true, null), (KvTxnOpKind.Get, "a", true, "10"), (KvTxnOpKind.Get, "b", false, null));
        result.Results[2].Version.Should().Be(3, "the transaction's own index");
        result.Results[2].CreateRevision.Should().Be(1, "a was created by the first write and rewritten since");
        failed.Succeeded.Should().BeFalse("b no longer exists");
        machine.Range(new KvRangeQuery("", null, 10)).Items.Select(i => (i.Key, i.Value)).Should().Equal(("a", "10"), ("c", "3"));
    }

    [Fact]
    public void A_retried_transaction_of_a_session_is_applied_once_and_answered_the_same()
    {
        var machine = new KvStateMachine();
        var txn = new KvTxn([Exists("k", false)], [new KvTxnOp(KvTxnOpKind.Put, "k", "once")], [new KvTxnOp(KvTxnOpKind.Get, "k")], "client-1", 1);

        var first = Apply(machine, txn.Encode()).ToArray();
        var retry = Apply(machine, txn.Encode()).ToArray();

        retry.Should().Equal(first);
        KvTxnResult.Decode(retry).Succeeded.Should().BeTrue("the retry is the first answer, not a second run that would fail");
    }

    [Fact]
    public void Create_revisions_and_transaction_sessions_survive_a_snapshot()
    {
        var machine = new KvStateMachine();
        Set(machine, "k", "a");
        Set(machine, "k", "b");
        var txn = new KvTxn([], [new KvTxnOp(KvTxnOpKind.Put, "t", "x")], [], "client-1", 1);
        var answer = Apply(machine, txn.Encode()).ToArray();

        using var stream = new MemoryStream();
        machine.CaptureSnapshot().WriteTo(stream);
        stream.Position = 0;
        var restored = new KvStateMachine();
        restored.Restore(stream);

        var read = KvTxnResult.Decode(Apply(restored, new KvTxn([], [new KvTxnOp(KvTxnOpKind.Get, "k")], []).Encode()).Span);
        read.Results[0].Should().Be(new KvTxnOpResult(KvTxnOpKind.Get, "k", true, "b", 2, 1));
        Apply(restored, txn.Encode()).ToArray().Should().Equal(answer, "the session's answer was in the snapshot");
        restored.Digest().Digest.Should().NotBe(0UL);
    }

    [Fact]
    public void A_snapshot_of_the_earlier_format_restores_with_the_last_write_standing_for_the_creation()
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(0x4B565331u); // "KVS1"
            writer.Write(7UL); // last applied
            writer.Write(1); // one item
            writer.Write("k");
            writer.Write("v");
            writer.Write(5UL); // its version
            writer.Write(1); // one session, its answer as a KV result
            writer.Write("client-1");
            writer.Write(3UL); // sequence
            writer.Write(6UL); // last index
            writer.Write(true); // ok
            writer.Write((byte)0); // no error
            writer.Write(true); // found
            writer.Write(true); // has a value
            writer.Write("v");
            writer.Write(5UL);
            writer.Write(5UL);
        }
        stream.Position = 0;
        var machine = new KvStateMachine();
        machine.Restore(stream);
        _index = 7;

        var read = Txn(machine, new KvTxn([], [new KvTxnOp(KvTxnOpKind.Get, "k")], []));
        var retried = KvResult.Decode(Apply(machine, new KvCommand(KvOperation.Set, "k", "again", ClientId: "client-1", Sequence: 3).Encode()).Span);

        read.Results[0].Should().Be(new KvTxnOpResult(KvTxnOpKind.Get, "k", true, "v", 5, 5));
        retried.Should().Be(new KvResult(true, KvError.None, true, "v", 5, 5), "the session's saved answer, not a second write");
    }

    [Fact]
    public void A_transaction_round_trips_through_its_bytes_and_too_many_operations_do_not_decode()
    {
        var txn = new KvTxn([new KvCompare("k", KvCompareTarget.Value, KvCompareOp.Less, "é", 0)], [new KvTxnOp(KvTxnOpKind.Put, "k", "v")],
            [new KvTxnOp(KvTxnOpKind.Delete, "k")], "c", 9);
        var decoded = KvTxn.Decode(txn.Encode());
        decoded.Compare.Should().Equal(txn.Compare);
        decoded.Success.Should().Equal(txn.Success);
        decoded.Failure.Should().Equal(txn.Failure);
        (decoded.ClientId, decoded.Sequence).Should().Be(("c", 9UL));

        var tooMany = new KvTxn([], Enumerable.Range(0, KvTxn.MaxOperations + 1).Select(i => new KvTxnOp(KvTxnOpKind.Get, "k" + i)).ToList(), []);
        var decode = () => KvTxn.Decode(tooMany.Encode());
        decode.Should().Throw<FormatException>();
    }
}
