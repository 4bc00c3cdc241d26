using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using RaftKv.Testing.Faults;

namespace RaftKv.Benchmarks;

/// <summary>
/// The long fault-injection run: rounds of a few minutes each, alternating 3- and 5-node clusters, with faults of every
/// kind drawn at random (partitions only when network labs can be built here: root, ip, iptables). Each round's history
/// is checked on its own. Prints the totals; exits non-zero on the first round with a violation, its report kept.
/// </summary>
internal static class Soak
{
    public static async Task<int> RunAsync(double minutes)
    {
        // Ctrl-C or SIGTERM ends the current round cleanly: processes killed, namespaces removed, totals printed.
        using var interrupted = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, Interrupt);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Interrupt);
        void Interrupt(PosixSignalContext context)
        {
            context.Cancel = true;
            interrupted.Cancel();
        }
        var partitions = NetworkLab.IsAvailable(out var why);
        Console.WriteLine(partitions ? "partitions: on (network lab)" : "partitions: OFF: " + why);
        var total = Stopwatch.StartNew();
        var budget = TimeSpan.FromMinutes(minutes);
        var round = 0;
        long operations = 0, acknowledged = 0, reads = 0, unknown = 0, failed = 0;
        var faults = new Dictionary<Fault, int>();
        var stepDowns = new List<double>();
        while (total.Elapsed < budget && !interrupted.IsCancellationRequested)
        {
            round++;
            var left = budget - total.Elapsed;
            var options = new FaultRunOptions
            {
                Nodes = round % 2 == 1 ? 3 : 5,
                Partitions = partitions,
                Duration = left < TimeSpan.FromMinutes(3) ? left : TimeSpan.FromMinutes(3),
                Seed = round,
            };
            FaultRunResult result;
            try
            {
                result = await FaultRun.RunAsync(options, line => Console.WriteLine($"  [{total.Elapsed:hh\\:mm\\:ss}] {line}"), interrupted.Token);
            }
            catch (OperationCanceledException) when (interrupted.IsCancellationRequested)
            {
                Console.WriteLine($"round {round}: interrupted (not counted)");
                round--;
                break;
            }
            operations += result.History.Count;
            acknowledged += result.Counts.AcknowledgedWrites;
            reads += result.Counts.Reads;
            unknown += result.Counts.Unknown;
            failed += result.Counts.Failed;
            foreach (var fault in result.Faults)
            {
                faults[fault.Fault] = faults.GetValueOrDefault(fault.Fault) + 1;
                if (fault.StepDown is { } stepDown)
                {
                    stepDowns.Add(stepDown.TotalMilliseconds);
                }
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"round {round}: {(result.Passed ? "ok" : "FAILED")}, {options.Nodes} nodes, {result.History.Count:N0} operations, {result.Counts.AcknowledgedWrites:N0} acknowledged writes, {result.Faults.Count} faults, checked in {result.CheckTime.TotalSeconds:F1}s"));
            if (!result.Passed)
            {
                var path = Path.Combine(Path.GetTempPath(), $"raftkv-soak-round{round}.txt");
                await File.WriteAllTextAsync(path, result + "\n" + string.Join('\n', result.History.OrderBy(o => o.Call))).ConfigureAwait(false);
                Console.WriteLine(result);
                Console.WriteLine($"history and report kept in {path}");
                return 1;
            }
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"""

            soak{(interrupted.IsCancellationRequested ? " (interrupted)" : "")}: {total.Elapsed.TotalMinutes:F1} minutes, {round} rounds, 0 violations
              operations recorded  {operations:N0} ({reads:N0} reads; the rest writes, deletes and compare-and-sets)
              acknowledged writes  {acknowledged:N0}
              outcome unknown      {unknown:N0}
              refused/unreachable  {failed:N0} (not recorded: they changed nothing)
              faults               {string.Join(", ", faults.OrderBy(f => f.Key).Select(f => $"{f.Key} {f.Value}"))}
              cut-off leader step-down  {(stepDowns.Count == 0 ? "n/a" : $"median {Median(stepDowns):F0} ms, max {stepDowns.Max():F0} ms")}
            """));
        return 0;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }
}
