using System.Diagnostics;
using System.Globalization;
using RaftKv.RaftCore;
using RaftKv.Storage;

namespace RaftKv.Benchmarks;

/// <summary>
/// Appends of 128-byte entries with a sync per batch: through the write-ahead log with preallocated segments (the
/// default), through it with segments that grow, and through a bare loop that appends the same bytes per batch to a
/// growing file with one write and one fsync (what the log did before it preallocated). All three run in the same
/// process, alternating, on the same disk, so that the ratios mean something on a shared, noisy machine. CPU per sync is
/// the process's user + system time over the run (the preallocating task's zero-filling included) divided by syncs.
/// </summary>
internal static class WalBenchmark
{
    private const int ValueBytes = 128;

    // What the log writes per entry (record header, index, term, kind, value), and per batch (its commit record).
    private const int EntryRecordBytes = 12 + 17 + ValueBytes;
    private const int CommitRecordBytes = 32;

    private readonly record struct Figures(double AppendsPerSecond, double CpuMicrosecondsPerSync);

    public static void Run(string directory, double secondsPerRun)
    {
        Console.WriteLine($"# WAL appends, preallocated and growing segments, vs bare append+fsync; {ValueBytes}-byte entries, {secondsPerRun:0.#} s per run, median of 5 alternating runs");
        Console.WriteLine($"# {Environment.ProcessorCount} cores, {RuntimeInformationText()}, directory {directory}");
        Console.WriteLine();
        Console.WriteLine("| batch | WAL preallocated appends/s | WAL growing appends/s | bare append+fsync appends/s | preallocated / bare | CPU µs per sync: preallocated | growing | bare |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
        foreach (var batch in new[] { 1, 8, 64, 512 })
        {
            var runs = new Dictionary<string, List<Figures>> { ["pre"] = [], ["grow"] = [], ["bare"] = [] };
            for (var round = 0; round < 5; round++)
            {
                // Rotate which goes first, so that none always meets a warmer or a colder disk.
                var order = new[] { "pre", "grow", "bare" };
                for (var i = 0; i < round % 3; i++)
                {
                    order = [.. order.Skip(1), order[0]];
                }
                foreach (var kind in order)
                {
                    var path = Path.Combine(directory, $"{kind}-{batch}-{round}");
                    runs[kind].Add(kind switch
                    {
                        "pre" => Wal(path, batch, secondsPerRun, SegmentPreallocation.Background),
                        "grow" => Wal(path, batch, secondsPerRun, SegmentPreallocation.None),
                        _ => Bare(path, batch, secondsPerRun),
                    });
                }
            }
            var (pre, grow, bare) = (Median(runs["pre"]), Median(runs["grow"]), Median(runs["bare"]));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {batch} | {pre.AppendsPerSecond:N0} | {grow.AppendsPerSecond:N0} | {bare.AppendsPerSecond:N0} | {pre.AppendsPerSecond / bare.AppendsPerSecond:P0} | {pre.CpuMicrosecondsPerSync:N0} | {grow.CpuMicrosecondsPerSync:N0} | {bare.CpuMicrosecondsPerSync:N0} |"));
        }
    }

    private static Figures Median(List<Figures> runs) =>
        new(runs.Select(r => r.AppendsPerSecond).Order().ElementAt(runs.Count / 2),
            runs.Select(r => r.CpuMicrosecondsPerSync).Order().ElementAt(runs.Count / 2));

    private static Figures Measure(int batch, double seconds, Action syncOneBatch)
    {
        syncOneBatch(); // the first segment (and, preallocated, the wait for its spare) before the clock starts
        var cpu = Process.GetCurrentProcess().TotalProcessorTime;
        long syncs = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            syncOneBatch();
            syncs++;
        }
        var elapsed = clock.Elapsed.TotalSeconds;
        var used = Process.GetCurrentProcess().TotalProcessorTime - cpu;
        return new Figures(syncs * batch / elapsed, used.TotalMicroseconds / syncs);
    }

    private static Figures Wal(string directory, int batch, double seconds, SegmentPreallocation preallocation)
    {
        Directory.CreateDirectory(directory);
        Figures run;
        using (var store = new WalLogStore(new PhysicalFileSystem(directory), new StorageOptions { Preallocation = preallocation }))
        {
            store.Load();
            store.SetHardState(new HardState(new Term(1), NodeId.None, LogIndex.Zero));
            store.Sync();
            var value = new byte[ValueBytes];
            var entries = new LogEntry[batch];
            var next = new LogIndex(1);
            run = Measure(batch, seconds, () =>
            {
                for (var i = 0; i < batch; i++)
                {
                    entries[i] = new LogEntry(next, new Term(1), EntryKind.Normal, value);
                    next = next.Next();
                }
                store.Append(entries);
                store.Sync();
            });
        }
        Directory.Delete(directory, recursive: true);
        return run;
    }

    private static Figures Bare(string directory, int batch, double seconds)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "bare.log");
        var bytes = new byte[(batch * EntryRecordBytes) + CommitRecordBytes];
        Random.Shared.NextBytes(bytes);
        long offset = 0;
        Figures run;
        using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
        {
            run = Measure(batch, seconds, () =>
            {
                RandomAccess.Write(handle, bytes, offset);
                RandomAccess.FlushToDisk(handle);
                offset += bytes.Length;
            });
        }
        Directory.Delete(directory, recursive: true);
        return run;
    }

    private static string RuntimeInformationText() => System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;
}
