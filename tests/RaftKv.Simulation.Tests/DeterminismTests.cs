using System.Globalization;
using RaftKv.Testing.Simulation;
using Xunit.Abstractions;

namespace RaftKv.Simulation.Tests;

public sealed class DeterminismTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(42)]
    [InlineData(1_001)]
    public void One_seed_run_twice_produces_the_same_trace(int seed)
    {
        var options = SimulationOptions.ForSeed(seed) with { RecordTrace = true };

        var first = new Simulator(options).Run();
        var second = new Simulator(options).Run();

        first.Trace.Should().NotBeEmpty();
        second.Trace.Should().Equal(first.Trace);
        second.TraceHash.Should().Be(first.TraceHash);
        output.WriteLine($"seed {seed}: {first.Trace.Count} events traced, hash {first.TraceHash:x16}");
    }

    [Fact]
    public void Different_seeds_produce_different_traces()
    {
        var first = new Simulator(SimulationOptions.ForSeed(42)).Run();
        var second = new Simulator(SimulationOptions.ForSeed(44)).Run();

        second.TraceHash.Should().NotBe(first.TraceHash);
    }

    /// <summary>Replays one seed with its full trace printed. A failing seed's message gives the command that runs this.</summary>
    [Fact]
    public void Replays_the_seed_in_RAFTKV_SIM_SEED()
    {
        var seed = ReadInt("RAFTKV_SIM_SEED") ?? 7;
        var options = SimulationOptions.ForSeed(seed, ReadInt("RAFTKV_SIM_SNAPSHOT_KEEP_ENTRIES"), ReadInt("RAFTKV_SIM_SNAPSHOT_THRESHOLD_ENTRIES"))
            with { RecordTrace = true };
        try
        {
            var result = new Simulator(options).Run();
            output.WriteLine($"seed {seed}: {result.AcknowledgedWrites} acknowledged writes, {result.Reads} reads, {result.LeadersElected} leaders, {result.Events} events");
            foreach (var line in result.Trace)
            {
                output.WriteLine(line);
            }
        }
        catch (SimulationFailureException failure)
        {
            foreach (var line in failure.Trace)
            {
                output.WriteLine(line);
            }
            output.WriteLine(failure.Message);
            throw;
        }
    }

    private static int? ReadInt(string variable) =>
        int.TryParse(Environment.GetEnvironmentVariable(variable), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : null;
}
