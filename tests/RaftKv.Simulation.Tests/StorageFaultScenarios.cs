using RaftKv.Testing.Simulation;
using Xunit.Abstractions;

namespace RaftKv.Simulation.Tests;

/// <summary>Targeted runs on the simulator: the real loop, the real WAL on a simulated disk, scripted faults.</summary>
public sealed class StorageFaultScenarios(ITestOutputHelper output)
{
    [Fact]
    public void A_failed_fsync_stops_writes_on_that_node_and_the_cluster_goes_on_with_the_others()
    {
        var sim = new Simulator(new SimulationOptions { Seed = 7, NodeCount = 3, Faults = FaultKinds.None, Clients = 0 });
        sim.StartScripted();
        sim.RunFor(1_000);
        var failing = sim.LeaderId!.Value;
        sim.FailNextFsync(failing);

        sim.Write(300, concurrency: 8, withinMs: 20_000);

        sim.StorageFailure(failing).Should().Contain("fsync failure (EIO)");
        sim.Status(failing)!.Role.Should().NotBe(RaftKv.RaftCore.Role.Leader);
        sim.LeaderId.Should().NotBeNull().And.NotBe(failing, "the others elected a leader among themselves");
        output.WriteLine($"n{failing} failed: {sim.StorageFailure(failing)}; n{sim.LeaderId} leads; {sim.AcknowledgedWrites} writes acknowledged");

        // An operator restarts the failed node: it recovers from its disk and catches up.
        sim.CrashNode(failing);
        sim.RestartNode(failing);
        sim.Converge(withinMs: 20_000);
    }

    [Fact]
    public void A_node_down_through_ten_thousand_writes_catches_up_through_InstallSnapshot()
    {
        var sim = new Simulator(new SimulationOptions
        {
            Seed = 42,
            NodeCount = 3,
            Faults = FaultKinds.None,
            Clients = 0,
            SnapshotThresholdEntries = 1_000,
            SnapshotKeepEntries = 100,
        });
        sim.StartScripted();
        sim.RunFor(1_000);
        sim.CrashNode(3);

        sim.Write(10_000, concurrency: 32, withinMs: 120_000);
        sim.RunFor(500);

        var leader = new[] { 1, 2 }.Select(sim.Status).Single(s => s!.Role == RaftKv.RaftCore.Role.Leader)!;
        output.WriteLine($"leader {leader.Id}: last {leader.LastIndex.Value}, first kept {leader.FirstIndex.Value}, snapshot {leader.SnapshotIndex.Value}");
        leader.FirstIndex.Value.Should().BeGreaterThan(8_000, "the leader compacted far past what the stopped node holds");

        sim.RestartNode(3);
        sim.Converge(withinMs: 30_000);

        sim.Delivered("InstallSnapshot").Should().BeGreaterThan(0);
        var caughtUp = sim.Status(3)!;
        var leaderNow = new[] { 1, 2, 3 }.Select(sim.Status).Single(s => s!.Role == RaftKv.RaftCore.Role.Leader)!;
        caughtUp.Applied.Should().Be(leaderNow.Commit);
        caughtUp.SnapshotIndex.Value.Should().BeGreaterThan(9_000);
        output.WriteLine($"n3 caught up: applied {caughtUp.Applied.Value}, snapshot {caughtUp.SnapshotIndex.Value}, {sim.Delivered("InstallSnapshot")} InstallSnapshot delivered, {sim.AcknowledgedWrites} writes acknowledged");
    }
}
