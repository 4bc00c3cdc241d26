using RaftKv.Node;
using RaftKv.RaftCore;
using RaftKv.Testing.Simulation;
using Xunit.Abstractions;

namespace RaftKv.Simulation.Tests;

/// <summary>Membership changes on the simulator: the real loop and core, nodes joining on empty disks and leaving for good.</summary>
public sealed class MembershipSimulationTests(ITestOutputHelper output)
{
    [Fact]
    public void A_three_node_cluster_grows_by_a_learner_promotes_it_removes_its_leader_and_converges_with_every_write()
    {
        var sim = new Simulator(new SimulationOptions { Seed = 11, NodeCount = 3, Faults = FaultKinds.None, Clients = 0 });
        sim.StartScripted();
        sim.RunFor(1_000);
        sim.Write(100, concurrency: 4, withinMs: 10_000);

        var joiner = sim.StartSpare();
        sim.Status(joiner)!.Config.Members.Should().BeEmpty("a spare starts on an empty disk and waits to be added");
        var added = sim.ChangeMembership(new ConfChange(ConfChangeKind.AddLearner, new NodeId((ulong)joiner), $"sim://n{joiner}"), withinMs: 5_000);
        added.Status.Should().Be(ProposalStatus.Applied, added.Reason);
        sim.Write(200, concurrency: 4, withinMs: 10_000);

        // The learner is promoted once it has caught up; until then the leader refuses (Conflict).
        var promoted = PromoteWhenCaughtUp(sim, joiner);
        promoted.Status.Should().Be(ProposalStatus.Applied, promoted.Reason);

        var oldLeader = sim.LeaderId!.Value;
        var removed = sim.ChangeMembership(new ConfChange(ConfChangeKind.Remove, new NodeId((ulong)oldLeader)), withinMs: 5_000);
        removed.Status.Should().Be(ProposalStatus.Applied, removed.Reason);
        sim.Write(300, concurrency: 4, withinMs: 10_000);
        sim.Converge(withinMs: 10_000);

        sim.IsRetired(oldLeader).Should().BeTrue("its removal committed");
        var leader = sim.LeaderId!.Value;
        leader.Should().NotBe(oldLeader);
        var config = sim.Status(leader)!.Config;
        config.Voters.Should().HaveCount(3).And.Contain(new NodeId((ulong)joiner)).And.NotContain(new NodeId((ulong)oldLeader));
        config.Learners.Should().BeEmpty();
        sim.Status(joiner)!.Applied.Should().Be(sim.Status(leader)!.Commit);
        sim.AcknowledgedWrites.Should().BeGreaterThanOrEqualTo(300);
        sim.MembershipChanges.Should().Contain(MembershipMove.AddLearner, 1).And.Contain(MembershipMove.Promote, 1).And.Contain(MembershipMove.RemoveLeader, 1);
        output.WriteLine($"n{oldLeader} removed and retired; n{leader} leads {config}; {sim.AcknowledgedWrites} writes acknowledged");
    }

    [Fact]
    public void Seeded_runs_apply_every_kind_of_membership_change()
    {
        // The first seeds of CI's range, as CI runs them: if the mix silently stopped changing membership, this fails.
        // 200 of them: the rarest moves apply about 2.5 (Promote) and 4 (RemoveLearner) times in 100 seeds, so 100 seeds
        // missed one by chance once the draws moved (the buggify points of issue 16 left none in seeds 0-99).
        var summary = SeedBatches.Run(Enumerable.Range(SeedBatches.FirstSeed, 200));

        output.WriteLine(summary.ToString());
        summary.Faults.GetValueOrDefault(FaultKinds.Membership).Should().BeGreaterThan(0);
        foreach (var move in Enum.GetValues<MembershipMove>())
        {
            summary.MembershipChanges.GetValueOrDefault(move).Should().BeGreaterThan(0, $"the seeds apply {move} at least once");
        }
    }

    private static ProposalOutcome PromoteWhenCaughtUp(Simulator sim, int learner)
    {
        while (true)
        {
            var outcome = sim.ChangeMembership(new ConfChange(ConfChangeKind.Promote, new NodeId((ulong)learner)), withinMs: 5_000);
            if (outcome.Status != ProposalStatus.Conflict || sim.Now > 60_000)
            {
                return outcome;
            }
            sim.RunFor(50);
        }
    }
}
