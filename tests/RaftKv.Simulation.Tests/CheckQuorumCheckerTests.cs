using RaftKv.RaftCore;
using RaftKv.Testing.Simulation;

namespace RaftKv.Simulation.Tests;

/// <summary>The CheckQuorum checker must fail on a leader that leads on without a quorum, and only then.</summary>
public sealed class CheckQuorumCheckerTests
{
    private const int ElectionTimeoutTicks = 10;
    private const int TickMs = 10;
    private static readonly NodeId N1 = new(1), N2 = new(2), N3 = new(3);
    private static readonly ClusterConfig Config = ClusterConfig.Create([N1, N2, N3]);

    /// <summary>n1 leading term 2 of (n1 n2 n3), with or without CheckQuorum.</summary>
    private static RaftNode Leader(bool checkQuorum)
    {
        var node = new RaftNode(new RaftOptions
        {
            Id = N1,
            RandomSeed = 1,
            PreVote = false,
            CheckQuorum = checkQuorum,
            ElectionTimeoutTicks = ElectionTimeoutTicks,
        }, PersistentState.Bootstrap(Config));
        node.Campaign();
        node.Step(new RequestVoteResponse(N2, N1, new Term(2), Granted: true, PreVote: false));
        node.Role.Should().Be(Role.Leader);
        return node;
    }

    /// <summary>Ticks the leader for three election timeouts, telling the checker of each tick and of what n1 heard.</summary>
    private static void TickThreeTimeouts(CheckQuorumChecker checker, RaftNode leader, Action<long>? hear = null)
    {
        long now = 0;
        checker.AfterStep(N1, leader, now);
        for (var tick = 0; tick < 3 * ElectionTimeoutTicks; tick++)
        {
            now += TickMs;
            hear?.Invoke(now);
            leader.Tick();
            checker.AfterStep(N1, leader, now);
        }
    }

    [Fact]
    public void A_leader_that_hears_from_nobody_for_two_election_timeouts_and_still_leads_is_caught()
    {
        var checker = CheckQuorumChecker.For(ElectionTimeoutTicks, TickMs);
        var leader = Leader(checkQuorum: false);

        var run = () => TickThreeTimeouts(checker, leader);

        run.Should().Throw<SafetyViolationException>()
            .WithMessage("check quorum: n1 still leads term 2 though in the last 220 ms it heard from no quorum of voters=(n1 n2 n3) (heard from: nobody)");
    }

    [Fact]
    public void A_leader_that_checks_its_quorum_steps_down_in_time()
    {
        var checker = CheckQuorumChecker.For(ElectionTimeoutTicks, TickMs);
        var leader = Leader(checkQuorum: true);

        TickThreeTimeouts(checker, leader);

        leader.Role.Should().NotBe(Role.Leader, "it stepped down (and, hearing nobody, campaigns again)");
    }

    [Fact]
    public void A_leader_that_hears_from_a_quorum_leads_on()
    {
        var checker = CheckQuorumChecker.For(ElectionTimeoutTicks, TickMs);
        var leader = Leader(checkQuorum: false);

        TickThreeTimeouts(checker, leader, hear: now => checker.Delivered(N1, N2, now));

        leader.Role.Should().Be(Role.Leader);
    }
}
