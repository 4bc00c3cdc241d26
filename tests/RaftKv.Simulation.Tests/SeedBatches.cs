using System.Globalization;
using RaftKv.Node;
using RaftKv.Testing.Simulation;

namespace RaftKv.Simulation.Tests;

/// <summary>
/// Which seeds CI runs. By default 2,000 seeds: even seeds on 3 nodes, odd seeds on 5, each with every fault kind.
/// RAFTKV_SIM_SEEDS sets how many and RAFTKV_SIM_FIRST_SEED where to start, for longer soaks.
/// </summary>
public static class SeedBatches
{
    public const int BatchCount = 10;

    public static int TotalSeeds => ReadInt("RAFTKV_SIM_SEEDS", 2_000);

    public static int FirstSeed => ReadInt("RAFTKV_SIM_FIRST_SEED", 0);

    public static TheoryData<int> Batches()
    {
        var data = new TheoryData<int>();
        for (var i = 0; i < BatchCount; i++)
        {
            data.Add(i);
        }
        return data;
    }

    /// <summary>
    /// The seeds of one batch in one half of the range. Each batch holds consecutive seeds, so both cluster sizes
    /// (even seeds: 3 nodes, odd: 5) and the two halves cost about the same and run side by side on two cores.
    /// </summary>
    public static IEnumerable<int> Seeds(int batch, int half)
    {
        var perHalf = TotalSeeds / 2;
        var perBatch = (perHalf + BatchCount - 1) / BatchCount;
        var start = (half * perHalf) + (batch * perBatch);
        var end = Math.Min((half + 1) * perHalf, start + perBatch);
        for (var k = start; k < end; k++)
        {
            yield return FirstSeed + k;
        }
    }

    /// <summary>Runs the seeds and returns what they did together; a failing seed throws with its replay command.</summary>
    public static BatchSummary Run(IEnumerable<int> seeds)
    {
        var summary = new BatchSummary();
        foreach (var seed in seeds)
        {
            var result = new Simulator(SimulationOptions.ForSeed(seed)).Run();
            summary.Add(result);
        }
        return summary;
    }

    private static int ReadInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : fallback;
}

public sealed class BatchSummary
{
    public int Seeds { get; private set; }

    public long AcknowledgedWrites { get; private set; }

    public long Reads { get; private set; }

    public long Elections { get; private set; }

    public int SeedsWithSnapshots { get; private set; }

    public Dictionary<FaultKinds, int> Faults { get; } = [];

    /// <summary>Membership changes that applied, by kind.</summary>
    public Dictionary<MembershipMove, int> MembershipChanges { get; } = [];

    /// <summary>How often each of the loop's buggify points fired.</summary>
    public Dictionary<BuggifyPoint, int> BuggifyFired { get; } = [];

    public void Add(SimulationResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        Seeds++;
        AcknowledgedWrites += result.AcknowledgedWrites;
        Reads += result.Reads;
        Elections += result.LeadersElected;
        if (result.SnapshotsHeld > 0)
        {
            SeedsWithSnapshots++;
        }
        foreach (var (kind, count) in result.Faults)
        {
            Faults[kind] = Faults.GetValueOrDefault(kind) + count;
        }
        foreach (var (move, count) in result.MembershipChanges)
        {
            MembershipChanges[move] = MembershipChanges.GetValueOrDefault(move) + count;
        }
        foreach (var (point, count) in result.BuggifyFired)
        {
            BuggifyFired[point] = BuggifyFired.GetValueOrDefault(point) + count;
        }
    }

    public override string ToString() =>
        $"{Seeds} seeds: {AcknowledgedWrites} acknowledged writes, {Reads} linearizable reads, {Elections} leaders elected, " +
        $"{SeedsWithSnapshots} seeds took snapshots; faults: " + string.Join(", ", Faults.OrderBy(f => f.Key).Select(f => $"{f.Key} {f.Value}")) +
        "; membership changes applied: " + string.Join(", ", MembershipChanges.OrderBy(m => m.Key).Select(m => $"{m.Key} {m.Value}")) +
        "; buggify points fired: " + string.Join(", ", BuggifyFired.OrderBy(b => b.Key).Select(b => $"{b.Key} {b.Value}"));
}
