using RaftKv.Testing.Simulation;

namespace RaftKv.Simulation.Tests;

/// <summary>
/// Seeds that once found a bug, kept as a track record (after etcd's robustness suite). They replay the bug exactly
/// only with the simulator of the commit that found it; after the simulator changes they still run as ordinary seeds.
/// </summary>
public sealed class RegressionSeeds
{
    [Theory]
    // A follower in Replicate whose appends were all lost stalled for good once its in-flight window was full and nothing
    // new was proposed: heartbeat answers now free a slot and resend (found by seed 1 of the first simulator).
    [InlineData(1)]
    // A restarted node found entries of a later term than its hard state (unsynced writes survived, the term did not)
    // (seeds 70, 113, 1129).
    [InlineData(70)]
    [InlineData(113)]
    [InlineData(1129)]
    // The loop reported a proposal Lost when another leader's entry replaced it in this node's log; the entry survived
    // on another node and a later leader committed it (seeds 206011 and 225987 of a 30,000-seed soak).
    [InlineData(206011)]
    [InlineData(225987)]
    public void Seed_that_once_found_a_bug_passes(int seed)
    {
        var result = new Simulator(SimulationOptions.ForSeed(seed)).Run();

        result.AcknowledgedWrites.Should().BeGreaterThan(0);
    }
}
