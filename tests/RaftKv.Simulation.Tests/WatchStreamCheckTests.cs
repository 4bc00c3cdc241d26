using RaftKv.Testing.Faults;
using RaftKv.Testing.Linearizability;
using static RaftKv.Testing.Linearizability.Operation;

namespace RaftKv.Simulation.Tests;

/// <summary>
/// The fault suite's watch check (<see cref="WatchRecorder.CheckStream"/>): a stream passes only if it is the committed
/// history of its keys. Each way a stream can be wrong is fed to it here and must be named.
/// </summary>
public sealed class WatchStreamCheckTests
{
    private const long Unknown = long.MaxValue;

    // Answered: k0=a at r5, k1=b at r6, k0 deleted at r7, a transaction at r9 (k0=c, k1=d). Unknown: k1=e (it did apply, at r10).
    private static readonly IReadOnlyList<Operation> History =
    [
        Set(1, "k0", "a", 0, 1) with { Index = 5 },
        Set(2, "k1", "b", 0, 2) with { Index = 6 },
        Delete(1, "k0", 3, 4, found: true) with { Index = 7 },
        Delete(2, "k0", 5, 6, found: false) with { Index = 8 },
        Txn(1, [TxnCondition.Absent("k0")], [TxnStep.Put("k0", "c"), TxnStep.Put("k1", "d")], [TxnStep.Get("k0")], 7, 8, succeeded: true,
            [new TxnSeen(false), new TxnSeen(false)]) with { Index = 9 },
        Set(2, "k1", "e", 9, Unknown),
    ];

    private static readonly Dictionary<string, string?> Final = new(StringComparer.Ordinal) { ["k0"] = "c", ["k1"] = "e" };

    private static readonly IReadOnlyList<WatchedChange> Committed =
    [
        new(5, "PUT", "k0", "a"),
        new(6, "PUT", "k1", "b"),
        new(7, "DELETE", "k0", null),
        new(9, "PUT", "k0", "c"),
        new(9, "PUT", "k1", "d"),
        new(10, "PUT", "k1", "e"),
        new(11, "PUT", WatchRecorder.EndMarker, "end"),
    ];

    private static IReadOnlyList<string> Check(IReadOnlyList<WatchedChange> changes) =>
        WatchRecorder.CheckStream(0, changes, History, Final, fromRevision: 5, endRevision: 11);

    [Fact]
    public void The_committed_history_passes()
    {
        Check(Committed).Should().BeEmpty();
    }

    [Fact]
    public void A_missing_answered_write_is_named()
    {
        Check([.. Committed.Where(c => c.Revision != 6)]).Should().Contain(p => p.StartsWith("missing: r6 PUT k1=b", StringComparison.Ordinal));
    }

    [Fact]
    public void Half_of_a_transaction_is_a_missing_change()
    {
        Check([.. Committed.Where(c => !(c.Revision == 9 && c.Key == "k1"))]).Should().Contain(p => p.StartsWith("missing: r9 PUT k1=d", StringComparison.Ordinal));
    }

    [Fact]
    public void A_missing_delete_is_named()
    {
        Check([.. Committed.Where(c => c.Revision != 7)]).Should().Contain(p => p.StartsWith("missing: r7 DELETE k0", StringComparison.Ordinal));
    }

    [Fact]
    public void A_value_no_client_wrote_is_invented()
    {
        Check([.. Committed.Take(2), new WatchedChange(6, "PUT", "k0", "zzz"), .. Committed.Skip(2)])
            .Should().Contain(p => p.StartsWith("invented: r6 PUT k0=zzz", StringComparison.Ordinal));
    }

    [Fact]
    public void A_value_written_to_another_key_is_invented()
    {
        Check([.. Committed.Take(2), new WatchedChange(6, "PUT", "k0", "b"), .. Committed.Skip(2)])
            .Should().Contain(p => p.StartsWith("invented: r6 PUT k0=b", StringComparison.Ordinal));
    }

    [Fact]
    public void A_delete_of_a_key_nobody_deleted_is_invented()
    {
        Check([.. Committed.Take(6), new WatchedChange(10, "DELETE", "k1", null), Committed[^1]])
            .Should().Contain(p => p.StartsWith("invented: r10 DELETE k1", StringComparison.Ordinal));
    }

    [Fact]
    public void Changes_out_of_revision_order_are_named()
    {
        Check([Committed[1], Committed[0], .. Committed.Skip(2)]).Should().Contain(p => p.StartsWith("out of order: r5 PUT k0=a", StringComparison.Ordinal));
    }

    [Fact]
    public void A_change_delivered_twice_is_named()
    {
        // As after a resume from the wrong position: the last change before the break comes again.
        Check([.. Committed.Take(3), Committed[2], .. Committed.Skip(3)]).Should().Contain(p => p.StartsWith("repeated: r7 DELETE k0", StringComparison.Ordinal));
    }

    [Fact]
    public void A_write_whose_outcome_was_unknown_may_be_missing_but_then_the_final_state_disagrees()
    {
        // k1=e was never answered, so its absence is not "missing"; but the store holds it, and the replay must too.
        var problems = Check([.. Committed.Where(c => c.Value != "e")]);

        problems.Should().NotContain(p => p.StartsWith("missing", StringComparison.Ordinal));
        problems.Should().Contain("replayed, k1 ends as d, but it is e");
    }

    [Fact]
    public void A_change_at_the_wrong_revision_is_missing_where_it_belongs()
    {
        Check([.. Committed.Select(c => c.Revision == 6 ? c with { Revision = 8 } : c)])
            .Should().Contain(p => p.StartsWith("missing: r6 PUT k1=b", StringComparison.Ordinal) && p.Contains("got", StringComparison.Ordinal) == false);
    }
}
