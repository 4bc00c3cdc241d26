using RaftKv.RaftCore;
using RaftKv.StateMachine;

namespace RaftKv.Server.Tests;

/// <summary>
/// The leader's lease clock, on a clock the test moves: nothing expires on a follower; a lease expires once its TTL has
/// passed since it was seen or kept alive; a new term of leading restarts every countdown; an expiring lease takes no
/// keepalive.
/// </summary>
public sealed class LeaseClockTests
{
    private readonly ManualTime _time = new();
    private readonly KvStateMachine _store = new();
    private ulong _index;

    private ulong Grant(long ttl) =>
        KvLeaseResult.Decode(_store.Apply(new LogEntry(new LogIndex(++_index), new Term(1), EntryKind.Normal, KvLeaseCommand.Grant(ttl).Encode())).Span).Id;

    [Fact]
    public void A_lease_is_due_once_its_ttl_has_passed_and_only_on_the_leader()
    {
        var clock = new LeaseClock(_store, _time);
        var lease = Grant(10);
        clock.Due(leading: true, new Term(1), 10).Should().BeEmpty("the first call as leader starts the countdowns");

        _time.Advance(TimeSpan.FromSeconds(9.9));
        var early = clock.Due(true, new Term(1), 10);
        _time.Advance(TimeSpan.FromSeconds(0.2));
        var onFollower = new LeaseClock(_store, _time).Due(leading: false, new Term(1), 10);
        var due = clock.Due(true, new Term(1), 10);

        early.Should().BeEmpty();
        onFollower.Should().BeEmpty();
        due.Should().Equal(lease);
        clock.Due(true, new Term(1), 10).Should().BeEmpty("a lease is handed out for expiry once");
    }

    [Fact]
    public void A_keepalive_restarts_the_countdown()
    {
        var clock = new LeaseClock(_store, _time);
        var lease = Grant(10);
        clock.Due(true, new Term(1), 10);
        _time.Advance(TimeSpan.FromSeconds(8));

        clock.KeepAlive(lease).Should().Be(10);
        _time.Advance(TimeSpan.FromSeconds(8));
        var stillAlive = clock.Due(true, new Term(1), 10);
        var left = clock.TimeToLive(lease)!;
        _time.Advance(TimeSpan.FromSeconds(2));

        stillAlive.Should().BeEmpty();
        left.LeftMs.Should().Be(2000);
        clock.Due(true, new Term(1), 10).Should().Equal(lease);
        clock.KeepAlive(lease).Should().BeNull("an expiring lease is not brought back");
        clock.KeepAlive(999).Should().BeNull("no such lease");
    }

    [Fact]
    public void A_new_term_of_leading_restarts_every_countdown_at_its_full_ttl()
    {
        var clock = new LeaseClock(_store, _time);
        var shortLease = Grant(5);
        var longLease = Grant(20);
        clock.Due(true, new Term(1), 10);
        _time.Advance(TimeSpan.FromSeconds(4));
        clock.Due(false, new Term(2), 10).Should().BeEmpty("another node leads term 2");
        _time.Advance(TimeSpan.FromSeconds(3)); // the short lease's first countdown has run out

        var atElection = clock.Due(true, new Term(3), 10);
        _time.Advance(TimeSpan.FromSeconds(4.9));
        var beforeFullTtl = clock.Due(true, new Term(3), 10);
        _time.Advance(TimeSpan.FromSeconds(0.1));
        var afterFullTtl = clock.Due(true, new Term(3), 10);

        atElection.Should().BeEmpty();
        beforeFullTtl.Should().BeEmpty();
        afterFullTtl.Should().Equal(shortLease);
        clock.TimeToLive(longLease)!.LeftMs.Should().Be(15_000);
    }

    [Fact]
    public void An_expiry_that_was_not_applied_is_handed_out_again_and_at_most_the_bound_at_once()
    {
        var clock = new LeaseClock(_store, _time);
        var leases = Enumerable.Range(0, 5).Select(_ => Grant(1)).ToList();
        clock.Due(true, new Term(1), 10);
        _time.Advance(TimeSpan.FromSeconds(1));

        var first = clock.Due(true, new Term(1), 3);
        var rest = clock.Due(true, new Term(1), 3);
        clock.RevokeEnded(first[0]);
        var again = clock.Due(true, new Term(1), 3);

        first.Should().Equal(leases.Take(3));
        rest.Should().Equal(leases.Skip(3));
        again.Should().Equal(first[0]);
    }

    [Fact]
    public void A_revoked_lease_is_forgotten()
    {
        var clock = new LeaseClock(_store, _time);
        var lease = Grant(10);
        clock.Due(true, new Term(1), 10);
        _store.Apply(new LogEntry(new LogIndex(++_index), new Term(1), EntryKind.Normal, KvLeaseCommand.Revoke(lease).Encode()));

        clock.TimeToLive(lease).Should().BeNull();
        _time.Advance(TimeSpan.FromSeconds(11));
        clock.Due(true, new Term(1), 10).Should().BeEmpty();
    }

    [Fact]
    public void The_leaders_answers_decode_to_what_was_encoded()
    {
        var answer = new LeaseTimeToLive(true, 10, 1234, 2, ["a", "ключ"]);

        var decoded = LeaseTimeToLive.Decode(answer.Encode());

        decoded.Should().BeEquivalentTo(answer);
        LeaseAsk.Decode(LeaseAsk.Encode(LeaseAsk.KeepAlive, 7)).Should().Be((LeaseAsk.KeepAlive, 7UL));
        FluentActions.Invoking(() => LeaseAsk.Decode(new byte[] { 1, 9, 0 })).Should().Throw<FormatException>();
    }

    /// <summary>A clock that moves only when the test says.</summary>
    private sealed class ManualTime : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
