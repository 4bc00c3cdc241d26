using System.Diagnostics;
using System.Globalization;
using RaftKv.RaftCore;
using RaftKv.Storage;

namespace RaftKv.Benchmarks;

/// <summary>
/// Appends of 128-byte entries with an fsync per batch, through the write-ahead log and through a bare loop that writes
/// the same number of bytes per batch with one write and one fsync. Both run in the same process, alternating, on the
/// same disk, so that the ratio means something on a shared, noisy machine.
/// </summary>
internal static class WalBenchmark
{
    private const int ValueBytes = 128;

    // What the log writes per entry (record header, index, term, kind, value), and per batch (its commit record).
    private const int EntryRecordBytes = 12 + 17 + ValueBytes;
    private const int CommitRecordBytes = 32;

    public static void Run(string directory, double secondsPerRun)
    {
        Console.WriteLine($"# WAL appends vs bare write+fsync, {ValueBytes}-byte entries, {secondsPerRun:0.#} s per run, best of 5 alternating runs");
        Console.WriteLine($"# {Environment.ProcessorCount} cores, {RuntimeInformationText()}, directory {directory}");
        Console.WriteLine();
        Console.WriteLine("| batch | WAL appends/s | bare appends/s | WAL / bare | WAL fsyncs/s | bare fsyncs/s |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|");
        foreach (var batch in new[] { 1, 8, 64, 512 })
        {
            double bestWal = 0, bestBare = 0;
            for (var round = 0; round < 5; round++)
            {
                // Alternate which goes first, so that neither always meets a warmer or a colder disk.
                if (round % 2 == 0)
                {
                    bestBare = Math.Max(bestBare, Bare(Path.Combine(directory, $"bare-{batch}-{round}"), batch, secondsPerRun));
                    bestWal = Math.Max(bestWal, Wal(Path.Combine(directory, $"wal-{batch}-{round}"), batch, secondsPerRun));
                }
                else
                {
                    bestWal = Math.Max(bestWal, Wal(Path.Combine(directory, $"wal-{batch}-{round}"), batch, secondsPerRun));
                    bestBare = Math.Max(bestBare, Bare(Path.Combine(directory, $"bare-{batch}-{round}"), batch, secondsPerRun));
                }
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {batch} | {bestWal:N0} | {bestBare:N0} | {bestWal / bestBare:P0} | {bestWal / batch:N0} | {bestBare / batch:N0} |"));
        }
    }

    private static double Wal(string directory, int batch, double seconds)
    {
        Directory.CreateDirectory(directory);
        using var store = new WalLogStore(new PhysicalFileSystem(directory));
        store.Load();
        store.SetHardState(new HardState(new Term(1), NodeId.None, LogIndex.Zero));
        store.Sync();
        var value = new byte[ValueBytes];
        var entries = new LogEntry[batch];
        var next = new LogIndex(1);
        long appended = 0;
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed.TotalSeconds < seconds)
        {
            for (var i = 0; i < batch; i++)
            {
                entries[i] = new LogEntry(next, new Term(1), EntryKind.Normal, value);
                next = next.Next();
            }
            store.Append(entries);
            store.Sync();
            appended += batch;
        }
        var rate = appended / clock.Elapsed.TotalSeconds;
        store.Dispose();
        Directory.Delete(directory, recursive: true);
        return rate;
    }

    private static double Bare(string directory, int batch, double seconds)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, "bare.log");
        var bytes = new byte[(batch * EntryRecordBytes) + CommitRecordBytes];
        Random.Shared.NextBytes(bytes);
        long appended = 0;
        long offset = 0;
        using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed.TotalSeconds < seconds)
            {
                RandomAccess.Write(handle, bytes, offset);
                RandomAccess.FlushToDisk(handle);
                offset += bytes.Length;
                appended += batch;
            }
            var rate = appended / clock.Elapsed.TotalSeconds;
            handle.Dispose();
            Directory.Delete(directory, recursive: true);
            return rate;
        }
    }

    private static string RuntimeInformationText() => System.Runtime.InteropServices.RuntimeInformation.FrameworkDescription;
}
