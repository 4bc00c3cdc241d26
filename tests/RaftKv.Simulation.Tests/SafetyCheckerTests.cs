using System.Text;
using RaftKv.RaftCore;
using RaftKv.Testing.Simulation;

namespace RaftKv.Simulation.Tests;

/// <summary>The checker must fail on histories that break Raft: each test feeds it one.</summary>
public sealed class SafetyCheckerTests
{
    private static readonly NodeId N1 = new(1), N2 = new(2), N3 = new(3), N4 = new(4), N5 = new(5);
    private static readonly ClusterConfig Config = ClusterConfig.Create([N1, N2, N3]);

    private static LogEntry Entry(ulong index, ulong term, string data) => new(new LogIndex(index), new Term(term), EntryKind.Normal, Encoding.UTF8.GetBytes(data));

    private static SafetyChecker CheckerWith(params NodeId[] nodes)
    {
        var checker = new SafetyChecker();
        foreach (var node in nodes)
        {
            checker.NodeLoaded(node, PersistentState.Bootstrap(Config));
        }
        return checker;
    }

    /// <summary>A node that became leader of term 2 with one granted vote, as if the voter had voted twice.</summary>
    private static RaftNode LeaderOfTerm2(NodeId id)
    {
        var node = new RaftNode(new RaftOptions { Id = id, RandomSeed = 1, PreVote = false }, PersistentState.Bootstrap(Config));
        node.Campaign();
        node.Step(new RequestVoteResponse(N3, id, new Term(2), Granted: true, PreVote: false));
        node.Role.Should().Be(Role.Leader);
        return node;
    }

    [Fact]
    public void Two_leaders_in_one_term_break_election_safety()
    {
        var checker = CheckerWith(N1, N2);
        var first = LeaderOfTerm2(N1);
        var second = LeaderOfTerm2(N2);
        checker.Appended(N1, [first.Entries(new LogIndex(2), new LogIndex(2))[0]]);
        checker.Appended(N2, [second.Entries(new LogIndex(2), new LogIndex(2))[0]]);

        checker.AfterStep(N1, first);
        var check = () => checker.AfterStep(N2, second);

        check.Should().Throw<SafetyViolationException>().WithMessage("election safety: n1 and n2 both led term 2");
    }

    [Fact]
    public void The_same_index_and_term_after_different_histories_breaks_log_matching()
    {
        var checker = CheckerWith(N1, N2);
        checker.Appended(N1, [Entry(2, 2, "a"), Entry(3, 2, "b")]);

        var diverge = () => checker.Appended(N2, [Entry(2, 2, "x"), Entry(3, 2, "b")]);

        diverge.Should().Throw<SafetyViolationException>().WithMessage("log matching: n2 holds entry i2/t2*");
    }

    [Fact]
    public void Two_nodes_applying_different_entries_at_one_index_break_state_machine_safety()
    {
        var checker = CheckerWith(N1, N2);
        checker.Applied(N1, Entry(2, 2, "a"));

        var apply = () => checker.Applied(N2, Entry(2, 2, "b"));

        apply.Should().Throw<SafetyViolationException>().WithMessage("state machine safety*");
    }

    [Fact]
    public void Applying_a_write_its_client_was_told_failed_is_caught()
    {
        var checker = CheckerWith(N1);
        checker.ToldNotApplied("k=v");

        var apply = () => checker.Applied(N1, Entry(2, 2, "k=v"));

        apply.Should().Throw<SafetyViolationException>().WithMessage("*told was never applied");
    }

    [Fact]
    public void A_leader_without_a_committed_entry_breaks_leader_completeness()
    {
        var checker = CheckerWith(N1, N2, N3);
        // n1 and n2 hold and commit index 2 of term 1; n3 never got it and then leads term 2.
        var committed = new RaftNode(new RaftOptions { Id = N2, RandomSeed = 1 },
            new PersistentState(new HardState(new Term(1), NodeId.None, new LogIndex(2)), null, LogIndex.Zero, Term.Zero,
                [.. PersistentState.Bootstrap(Config).Entries, Entry(2, 1, "a")]));
        checker.Appended(N2, [Entry(2, 1, "a")]);
        checker.AfterStep(N2, committed);
        var leader = new RaftNode(new RaftOptions { Id = N3, RandomSeed = 1, PreVote = false }, PersistentState.Bootstrap(Config));
        leader.Campaign();
        leader.Step(new RequestVoteResponse(N1, N3, new Term(2), Granted: true, PreVote: false));
        checker.Appended(N3, [leader.Entries(new LogIndex(2), new LogIndex(2))[0]]);

        var check = () => checker.AfterStep(N3, leader);

        check.Should().Throw<SafetyViolationException>().WithMessage("leader completeness*");
    }

    /// <summary>A node in <paramref name="fromTerm"/> that campaigns and wins with <paramref name="voter"/>'s vote: the leader of the next term.</summary>
    private static RaftNode LeaderAfter(NodeId id, ulong fromTerm, NodeId voter)
    {
        var node = new RaftNode(new RaftOptions { Id = id, RandomSeed = 1, PreVote = false },
            PersistentState.Bootstrap(Config) with { HardState = new HardState(new Term(fromTerm), NodeId.None, new LogIndex(1)) });
        node.Campaign();
        node.Step(new RequestVoteResponse(voter, id, new Term(fromTerm + 1), Granted: true, PreVote: false));
        node.Role.Should().Be(Role.Leader);
        return node;
    }

    [Fact]
    public void A_leader_of_an_older_term_elected_late_may_lack_what_a_later_term_committed()
    {
        // Seeds 1058152, 1070560, 1187259 and 1203341 of the million-seed soak: n3 asked for votes in term 2 and n1 granted
        // one, whose answer was delayed; meanwhile n1 led term 3 and committed i2/t3 with n2; then the late vote made n3
        // leader of term 2. Raft's leader completeness covers the leaders of higher-numbered terms only (Figure 3), and n3
        // can commit nothing: a quorum is in term 3. A leader of term 4 without i2 breaks it.
        var checker = CheckerWith(N1, N2, N3);
        var committed = new RaftNode(new RaftOptions { Id = N2, RandomSeed = 1 },
            new PersistentState(new HardState(new Term(3), N1, new LogIndex(2)), null, LogIndex.Zero, Term.Zero,
                [.. PersistentState.Bootstrap(Config).Entries, Entry(2, 3, "noop")]));
        checker.Appended(N2, [Entry(2, 3, "noop")]);
        checker.AfterStep(N2, committed);
        var late = LeaderAfter(N3, fromTerm: 1, voter: N1);
        checker.Appended(N3, [late.Entries(new LogIndex(2), new LogIndex(2))[0]]);

        var inTerm2 = () => checker.AfterStep(N3, late);

        inTerm2.Should().NotThrow();
        var inTerm4 = LeaderAfter(N1, fromTerm: 3, voter: N3);
        checker.Appended(N1, [inTerm4.Entries(new LogIndex(2), new LogIndex(2))[0]]);
        var check = () => checker.AfterStep(N1, inTerm4);
        check.Should().Throw<SafetyViolationException>().WithMessage("leader completeness: n1 leads term 4 without the entry at i2 committed in term 3");
    }

    [Fact]
    public void A_node_that_joins_with_an_empty_store_is_no_violation()
    {
        var checker = CheckerWith(N1);
        var empty = new PersistentState(new HardState(Term.Zero, NodeId.None, LogIndex.Zero), null, LogIndex.Zero, Term.Zero, []);
        var joiner = new RaftNode(new RaftOptions { Id = N4, RandomSeed = 1 }, empty);

        checker.NodeLoaded(N4, empty);
        checker.AfterStep(N4, joiner);
        var catchUp = () => checker.Appended(N4, PersistentState.Bootstrap(Config).Entries);

        catchUp.Should().NotThrow();
        joiner.Config.Members.Should().BeEmpty();
    }

    [Fact]
    public void A_leader_committing_without_a_quorum_of_its_configuration_in_force_is_caught()
    {
        // The checker reads configurations from what it sees stored: n1 and n2 stored, at index 2, a configuration of five
        // voters. n1 then commits index 2 with n2's acknowledgement alone: a quorum of three, not of five.
        var checker = CheckerWith(N1, N2, N3);
        var leader = LeaderOfTerm2(N1);
        leader.Advance(leader.GetReady());
        var wider = new LogEntry(new LogIndex(2), new Term(2), EntryKind.Config, ClusterConfig.Create([N1, N2, N3, N4, N5]).Encode());
        checker.Appended(N1, [wider]);
        checker.Appended(N2, [wider]);
        checker.AfterStep(N1, leader);

        leader.Step(new AppendEntriesResponse(N2, N1, new Term(2), Success: true, new LogIndex(2), LogIndex.Zero, Term.Zero));
        leader.CommitIndex.Should().Be(new LogIndex(2));
        var check = () => checker.AfterStep(N1, leader);

        check.Should().Throw<SafetyViolationException>().WithMessage("n1 committed i2 in term 2, held only by (n1 n2): no quorum of its configuration in force (voters=(n1 n2 n3 n4 n5))");
    }

    [Fact]
    public void A_node_that_no_longer_holds_what_it_acknowledged_in_its_term_is_caught()
    {
        // n2 stored and acknowledged i2 and i3 of term 2, then (still in term 2) comes back with i3 gone.
        var checker = CheckerWith(N2);
        checker.Appended(N2, [Entry(2, 2, "a"), Entry(3, 2, "b")]);
        checker.Acknowledged(N2, new Term(2), new LogIndex(3));
        var shorter = new PersistentState(new HardState(new Term(2), NodeId.None, new LogIndex(1)), null, LogIndex.Zero, Term.Zero,
            [.. PersistentState.Bootstrap(Config).Entries, Entry(2, 2, "a")]);
        checker.NodeLoaded(N2, shorter);

        var check = () => checker.AfterStep(N2, new RaftNode(new RaftOptions { Id = N2, RandomSeed = 1 }, shorter));

        check.Should().Throw<SafetyViolationException>()
            .WithMessage("n2 acknowledged i3 to the leader of term 2 and, still in that term, no longer holds it (its log: (i0, i2])");
    }

    [Fact]
    public void Acknowledging_entries_a_node_has_not_stored_is_caught()
    {
        var checker = CheckerWith(N2);

        var acknowledge = () => checker.Acknowledged(N2, new Term(2), new LogIndex(3));

        acknowledge.Should().Throw<SafetyViolationException>().WithMessage("n2 acknowledged i3 in term 2, but its store ends at i1");
    }
}
