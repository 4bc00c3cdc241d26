using RaftKv.Node;
using RaftKv.Testing.Simulation;
using Xunit.Abstractions;

namespace RaftKv.Simulation.Tests;

// Two classes, one per half of the seed range, so that xunit runs them on both cores at once.
// Even seeds run 3-node clusters, odd seeds 5-node clusters.

public sealed class ClusterSimulationFirstHalf(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(SeedBatches.Batches), MemberType = typeof(SeedBatches))]
    public void Every_seed_keeps_raft_safe_and_converges_after_faults_heal(int batch) =>
        SeededRuns.RunBatch(SeedBatches.Seeds(batch, half: 0), output);
}

public sealed class ClusterSimulationSecondHalf(ITestOutputHelper output)
{
    [Theory]
    [MemberData(nameof(SeedBatches.Batches), MemberType = typeof(SeedBatches))]
    public void Every_seed_keeps_raft_safe_and_converges_after_faults_heal(int batch) =>
        SeededRuns.RunBatch(SeedBatches.Seeds(batch, half: 1), output);
}

internal static class SeededRuns
{
    public static void RunBatch(IEnumerable<int> seeds, ITestOutputHelper output)
    {
        var summary = SeedBatches.Run(seeds);
        output.WriteLine(summary.ToString());
        if (summary.Seeds == 0)
        {
            return;
        }
        // The batch really exercised the cluster: clients got answers, and every kind of fault happened.
        summary.AcknowledgedWrites.Should().BeGreaterThan(summary.Seeds, "clients get writes acknowledged in the runs");
        summary.Reads.Should().BeGreaterThan(0);
        summary.SeedsWithSnapshots.Should().BeGreaterThan(0);
        foreach (var kind in new[] { FaultKinds.Partition, FaultKinds.Crash, FaultKinds.CrashDuringSync, FaultKinds.FsyncFailure, FaultKinds.LeaderCrash, FaultKinds.LeaderChurn, FaultKinds.BitFlip, FaultKinds.LeaderSwap, FaultKinds.Membership })
        {
            summary.Faults.GetValueOrDefault(kind).Should().BeGreaterThan(0, $"every batch injects {kind}");
        }
        foreach (var point in Enum.GetValues<BuggifyPoint>())
        {
            summary.BuggifyFired.GetValueOrDefault(point).Should().BeGreaterThan(0, $"every batch reaches the buggify point {point}");
        }
    }
}
