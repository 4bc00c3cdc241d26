using RaftKv.RaftCore;

namespace RaftKv.StateMachine.Tests;

/// <summary>
/// Leases in the replicated state: grants, keys attached and detached, revokes and expiries that delete exactly the
/// lease's keys (with watch events), the expiry's term rule, bounds, snapshots and codecs.
/// </summary>
public sealed class KvLeaseTests
{
    private ulong _index;

    private ReadOnlyMemory<byte> Apply(KvStateMachine machine, byte[] data, ulong term = 1) =>
        machine.Apply(new LogEntry(new LogIndex(++_index), new Term(term), EntryKind.Normal, data));

    private KvLeaseResult Lease(KvStateMachine machine, KvLeaseCommand command, ulong term = 1) =>
        KvLeaseResult.Decode(Apply(machine, command.Encode(), term).Span);

    private KvResult Set(KvStateMachine machine, string key, string value, ulong lease = 0) =>
        KvResult.Decode(Apply(machine, new KvCommand(KvOperation.Set, key, value, Lease: lease).Encode()).Span);

    private static IEnumerable<string> KeysOf(KvStateMachine machine) => machine.Range(new KvRangeQuery("", null, 1000)).Items.Select(i => i.Key);

    [Fact]
    public void A_revoke_deletes_the_keys_written_with_the_lease_and_no_others()
    {
        var machine = new KvStateMachine();
        var lease = Lease(machine, KvLeaseCommand.Grant(10));
        Set(machine, "a", "1", lease.Id);
        Set(machine, "b", "2", lease.Id);
        Set(machine, "c", "3");

        var revoked = Lease(machine, KvLeaseCommand.Revoke(lease.Id));

        lease.Should().Be(new KvLeaseResult(true, KvError.None, 1, 10, 0, 1), "a lease's id is the index that granted it");
        revoked.Should().Be(new KvLeaseResult(true, KvError.None, 1, 10, 2, 5));
        KeysOf(machine).Should().Equal("c");
        machine.Leases.Should().BeEmpty();
        Lease(machine, KvLeaseCommand.Revoke(lease.Id)).Error.Should().Be(KvError.LeaseNotFound, "a lease ends once");
    }

    [Fact]
    public void A_revokes_deletions_are_watch_events_at_its_revision()
    {
        var machine = new KvStateMachine();
        var lease = Lease(machine, KvLeaseCommand.Grant(10));
        Set(machine, "a", "1", lease.Id);
        Set(machine, "b", "2", lease.Id);
        Lease(machine, KvLeaseCommand.Revoke(lease.Id));
        (ulong, int) start = (3, int.MaxValue);

        var events = machine.History.After(ref start, _ => true, 10, out _)!;

        events.Select(e => (e.Id, e.Type, e.Key, e.PreviousValue)).Should().Equal(("4.0", WatchEventType.Delete, "a", "1"), ("4.1", WatchEventType.Delete, "b", "2"));
    }

    [Fact]
    public void A_write_without_the_lease_or_a_delete_takes_the_key_off_it()
    {
        var machine = new KvStateMachine();
        var lease = Lease(machine, KvLeaseCommand.Grant(10)).Id;
        Set(machine, "rewritten", "1", lease);
        Set(machine, "deleted", "1", lease);
        Set(machine, "kept", "1", lease);
        Set(machine, "rewritten", "2");
        Apply(machine, new KvCommand(KvOperation.Delete, "deleted").Encode());
        Set(machine, "deleted", "again"); // a new key of the same name, without the lease

        machine.Leases[lease].Keys.Should().Equal("kept");
        Lease(machine, KvLeaseCommand.Revoke(lease)).Deleted.Should().Be(1);
        KeysOf(machine).Should().Equal("deleted", "rewritten");
    }

    [Fact]
    public void A_key_moved_to_another_lease_goes_with_that_one()
    {
        var machine = new KvStateMachine();
        var first = Lease(machine, KvLeaseCommand.Grant(10)).Id;
        var second = Lease(machine, KvLeaseCommand.Grant(10)).Id;
        Set(machine, "k", "1", first);
        Set(machine, "k", "2", second);

        Lease(machine, KvLeaseCommand.Revoke(first)).Deleted.Should().Be(0);
        KeysOf(machine).Should().Equal("k");
        Lease(machine, KvLeaseCommand.Revoke(second)).Deleted.Should().Be(1);
        KeysOf(machine).Should().BeEmpty();
    }

    [Fact]
    public void A_write_or_a_transaction_naming_a_lease_that_does_not_exist_changes_nothing()
    {
        var machine = new KvStateMachine();
        Set(machine, "k", "before");

        var set = Set(machine, "k", "after", lease: 42);
        var txn = Apply(machine, new KvTxn([], [new KvTxnOp(KvTxnOpKind.Put, "other", "x"), new KvTxnOp(KvTxnOpKind.Put, "k", "after", 42)], []).Encode());

        set.Should().Match<KvResult>(r => !r.Ok && r.Error == KvError.LeaseNotFound);
        KvResult.Decode(txn.Span).Error.Should().Be(KvError.LeaseNotFound, "a branch runs whole or not at all");
        machine.Range(new KvRangeQuery("", null, 10)).Items.Should().ContainSingle().Which.Should().Be(new KvRangeItem("k", "before", 1));
    }

    [Fact]
    public void A_transactions_put_attaches_its_key_to_the_lease()
    {
        var machine = new KvStateMachine();
        var lease = Lease(machine, KvLeaseCommand.Grant(10)).Id;

        var result = KvTxnResult.Decode(Apply(machine, new KvTxn([], [new KvTxnOp(KvTxnOpKind.Put, "lock", "me", lease)], []).Encode()).Span);

        result.Succeeded.Should().BeTrue();
        machine.Leases[lease].Keys.Should().Equal("lock");
    }

    [Fact]
    public void An_expiry_counts_only_in_the_term_of_the_leader_that_decided_it()
    {
        var machine = new KvStateMachine();
        var lease = Lease(machine, KvLeaseCommand.Grant(10), term: 3).Id;
        Set(machine, "k", "v", lease);

        var forwarded = Lease(machine, KvLeaseCommand.Expire(lease, term: 3), term: 4);
        var kept = KeysOf(machine).ToList();
        var expired = Lease(machine, KvLeaseCommand.Expire(lease, term: 4), term: 4);

        forwarded.Error.Should().Be(KvError.StaleExpiry, "appended by the leader of term 4, decided by that of term 3");
        kept.Should().Equal("k");
        expired.Should().Match<KvLeaseResult>(r => r.Ok && r.Deleted == 1);
        KeysOf(machine).Should().BeEmpty();
    }

    [Fact]
    public void A_grant_beyond_the_bound_is_refused_on_every_node_alike()
    {
        var machine = new KvStateMachine(new KvOptions { MaxLeases = 2 });
        Lease(machine, KvLeaseCommand.Grant(5));
        var second = Lease(machine, KvLeaseCommand.Grant(5));

        Lease(machine, KvLeaseCommand.Grant(5)).Error.Should().Be(KvError.TooManyLeases);
        Lease(machine, KvLeaseCommand.Revoke(second.Id));
        Lease(machine, KvLeaseCommand.Grant(5)).Ok.Should().BeTrue("a revoke makes room");
    }

    [Fact]
    public void A_retried_grant_of_a_session_grants_one_lease()
    {
        var machine = new KvStateMachine();

        var first = Lease(machine, KvLeaseCommand.Grant(5, "client", 1));
        var retry = Lease(machine, KvLeaseCommand.Grant(5, "client", 1));

        retry.Should().Be(first);
        machine.Leases.Should().ContainSingle();
    }

    [Fact]
    public void Leases_and_their_keys_survive_a_snapshot_and_end_the_same_after_it()
    {
        var machine = new KvStateMachine();
        var lease = Lease(machine, KvLeaseCommand.Grant(30)).Id;
        var other = Lease(machine, KvLeaseCommand.Grant(60)).Id;
        Set(machine, "a", "1", lease);
        Set(machine, "b", "2", other);
        Set(machine, "c", "3");
        using var stream = new MemoryStream();
        machine.CaptureSnapshot().WriteTo(stream);
        stream.Position = 0;

        var restored = new KvStateMachine();
        restored.Restore(stream);

        restored.Digest().Should().Be(machine.Digest());
        restored.Leases.Values.Select(l => (l.Id, l.TtlSeconds, string.Join(",", l.Keys))).Should().BeEquivalentTo([(lease, 30L, "a"), (other, 60L, "b")]);
        foreach (var store in new[] { machine, restored })
        {
            store.Apply(new LogEntry(new LogIndex(_index + 1), new Term(1), EntryKind.Normal, KvLeaseCommand.Revoke(lease).Encode()));
        }
        KeysOf(restored).Should().Equal(KeysOf(machine)).And.Equal("b", "c");
    }

    [Fact]
    public void Lease_commands_writes_with_a_lease_and_lease_results_decode_to_what_was_encoded()
    {
        var grant = KvLeaseCommand.Grant(15, "c", 7);
        var expire = KvLeaseCommand.Expire(9, 4);
        var set = new KvCommand(KvOperation.Set, "k", "v", ClientId: "c", Sequence: 2, Lease: 9);
        var txn = new KvTxn([], [new KvTxnOp(KvTxnOpKind.Put, "k", "v", 9), new KvTxnOp(KvTxnOpKind.Delete, "d")], [new KvTxnOp(KvTxnOpKind.Put, "x", "y")]);
        var result = new KvLeaseResult(true, KvError.None, 9, 15, 3, 12);

        KvLeaseCommand.Decode(grant.Encode()).Should().Be(grant);
        KvLeaseCommand.Decode(expire.Encode()).Should().Be(expire);
        KvCommand.Decode(set.Encode()).Should().Be(set);
        KvCommand.Decode(new KvCommand(KvOperation.Set, "k", "v").Encode()).Lease.Should().Be(0);
        KvTxn.Decode(txn.Encode()).Should().BeEquivalentTo(txn);
        KvLeaseResult.Decode(result.Encode()).Should().Be(result);
        FluentActions.Invoking(() => KvLeaseCommand.Decode(grant.Encode().AsSpan(0, 20))).Should().Throw<FormatException>();
    }
}
