using System.Diagnostics;
using System.Globalization;
using RaftKv.Testing.Simulation;

// Runs simulation seeds outside the test runner, for soaks and for scripts/mutants.sh. Each seed runs exactly as CI runs
// it (SimulationOptions.ForSeed), so a failure printed here replays with the test's replay command.
// Usage: RaftKv.Simulation.Runner [--first N] [--count N] [--seconds N] [--workers N] [--stop-at-first-failure] [--progress N]
//          [--snapshot-keep-entries N] [--snapshot-threshold-entries N]
// The last two fix the snapshot settings of every seed instead of letting the seed draw them (keep 0: each snapshot
// compacts every entry it covers); the replay command printed for a failure carries them.
// Prints "FAIL seed S (k seeds run): <message>" for each failure, "progress k" after every N seeds run (with --progress),
// then one summary line; exits 1 if any seed failed.
var first = 0;
var count = 2_000;
var seconds = 600;
var workers = 1;
var stopAtFirstFailure = false;
var progressEvery = 0;
int? snapshotKeepEntries = null;
int? snapshotThresholdEntries = null;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--first": first = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--count": count = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--seconds": seconds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--workers": workers = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--stop-at-first-failure": stopAtFirstFailure = true; break;
        case "--progress": progressEvery = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--snapshot-keep-entries": snapshotKeepEntries = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--snapshot-threshold-entries": snapshotThresholdEntries = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        default:
            Console.Error.WriteLine("usage: RaftKv.Simulation.Runner [--first N] [--count N] [--seconds N] [--workers N] [--stop-at-first-failure] [--progress N] [--snapshot-keep-entries N] [--snapshot-threshold-entries N]");
            return 2;
    }
}

var clock = Stopwatch.StartNew();
var deadline = TimeSpan.FromSeconds(seconds);
var next = first - 1;
var run = 0;
var failures = new List<(int Seed, string Message)>();
var gate = new object();
var stop = false;

void Work()
{
    while (true)
    {
        int seed;
        lock (gate)
        {
            if (stop || next + 1 >= first + count || clock.Elapsed > deadline)
            {
                return;
            }
            seed = ++next;
        }
        string? failure = null;
        try
        {
            new Simulator(SimulationOptions.ForSeed(seed, snapshotKeepEntries, snapshotThresholdEntries)).Run();
        }
        catch (SimulationFailureException e)
        {
            failure = e.Message.Split('\n')[0];
        }
        catch (Exception e)
        {
            // Any other exception out of a run is a bug too: report it with its seed and go on with the next seeds (on a
            // worker thread it would end the whole process, and with it the rest of a soak's range).
            failure = $"unexpected {e.GetType().Name}: {e.Message.Split('\n')[0]}";
        }
        lock (gate)
        {
            run++;
            if (progressEvery > 0 && run % progressEvery == 0)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"progress {run}"));
            }
            if (failure is not null)
            {
                failures.Add((seed, failure));
                Console.WriteLine($"FAIL seed {seed} ({seed - first + 1} seeds in): {failure}");
                Console.WriteLine($"  replay: {SimulationOptions.ForSeed(seed, snapshotKeepEntries, snapshotThresholdEntries).ReplayCommand}");
                stop |= stopAtFirstFailure;
            }
        }
    }
}

var threads = Enumerable.Range(0, Math.Max(1, workers)).Select(_ => new Thread(Work)).ToList();
threads.ForEach(t => t.Start());
threads.ForEach(t => t.Join());

var elapsed = clock.Elapsed.TotalSeconds;
var bound = run < count && failures.Count == 0 ? " (time bound reached)" : "";
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"{run} seeds from {first} in {elapsed:F1} s ({run / Math.Max(elapsed, 0.001):F1} seeds/s), {failures.Count} failed{bound}"));
return failures.Count > 0 ? 1 : 0;
