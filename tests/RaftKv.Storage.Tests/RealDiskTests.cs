using System.Diagnostics;
using System.Globalization;
using RaftKv.RaftCore;
using RaftKv.Storage.CrashWriter;

namespace RaftKv.Storage.Tests;

/// <summary>The write-ahead log on this machine's real disk, with real fsync and a real SIGKILL.</summary>
public sealed class RealDiskTests : IDisposable
{
    // A segment that grows, so that its length on disk is the log's (WalPreallocationTests has preallocated ones).
    private static readonly StorageOptions Growing = new() { Preallocation = SegmentPreallocation.None };

    private readonly string _directory = Path.Combine(Path.GetTempPath(), "raftkv-wal-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Fact]
    public void A_process_killed_with_sigkill_mid_stream_reopens_with_every_entry_it_reported_persisted()
    {
        ulong reported = 0;
        for (var round = 0; round < 3; round++)
        {
            // Each round kills the writer after a different amount of work; the next round carries on from what survived.
            var target = reported + (ulong)(500 + (round * 700));
            reported = RunWriterAndKill(seed: round, killAfter: target);

            using var store = new WalLogStore(new PhysicalFileSystem(_directory), new StorageOptions { SegmentBytes = 256 * 1024 });
            var state = store.Load();

            state.LastIndex.Value.Should().BeGreaterThanOrEqualTo(reported, "every entry reported persisted survives SIGKILL");
            for (var i = 0; i < state.Entries.Count; i++)
            {
                var entry = state.Entries[i];
                entry.Index.Value.Should().Be((ulong)i + 1);
                entry.Data.ToArray().Should().Equal(EntryPayload.For(entry.Index));
            }
            reported = state.LastIndex.Value;
        }
    }

    [Fact]
    public void A_torn_tail_on_a_real_file_is_cut_and_the_log_goes_on()
    {
        Directory.CreateDirectory(_directory);
        var files = new PhysicalFileSystem(_directory);
        long valid;
        string segment;
        using (var store = new WalLogStore(files, Growing))
        {
            store.Load();
            store.SetHardState(new HardState(new Term(1), NodeId.None, LogIndex.Zero));
            store.Append([.. Enumerable.Range(1, 10).Select(i => new LogEntry(new LogIndex((ulong)i), new Term(1), EntryKind.Normal, EntryPayload.For(new LogIndex((ulong)i))))]);
            store.Sync();
            segment = Path.Combine(_directory, "wal", Directory.GetFiles(Path.Combine(_directory, "wal")).Select(Path.GetFileName).Single()!);
            valid = new FileInfo(segment).Length;
            store.Append([new LogEntry(new LogIndex(11), new Term(1), EntryKind.Normal, EntryPayload.For(new LogIndex(11)))]);
            store.Sync();
        }
        using (var stream = new FileStream(segment, FileMode.Open))
        {
            stream.SetLength(valid + 50); // the last batch only half made it
        }

        using var reopened = new WalLogStore(files, Growing);
        var state = reopened.Load();

        state.LastIndex.Should().Be(new LogIndex(10));
        reopened.RepairedTornTail.Should().EndWith($"at offset {valid}");
        new FileInfo(segment).Length.Should().Be(valid);
    }

    private ulong RunWriterAndKill(int seed, ulong killAfter)
    {
        var writer = Path.Combine(AppContext.BaseDirectory, "RaftKv.Storage.CrashWriter.dll");
        var start = new ProcessStartInfo("dotnet", ["exec", writer, _directory, seed.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start)!;
        ulong reported = 0;
        try
        {
            var deadline = Stopwatch.StartNew();
            while (reported < killAfter && deadline.Elapsed < TimeSpan.FromSeconds(60))
            {
                var line = process.StandardOutput.ReadLine() ?? throw new InvalidOperationException("writer exited: " + process.StandardError.ReadToEnd());
                if (line.StartsWith("persisted ", StringComparison.Ordinal))
                {
                    reported = ulong.Parse(line["persisted ".Length..], CultureInfo.InvariantCulture);
                }
            }
            reported.Should().BeGreaterThanOrEqualTo(killAfter, "the writer made progress before the deadline");
        }
        finally
        {
            // SIGKILL, mid-stream: the writer is still appending. Its last word might still be in the pipe: read it.
            process.Kill();
            process.WaitForExit();
        }
        string? rest;
        while ((rest = process.StandardOutput.ReadLine()) is not null)
        {
            if (rest.StartsWith("persisted ", StringComparison.Ordinal))
            {
                reported = ulong.Parse(rest["persisted ".Length..], CultureInfo.InvariantCulture);
            }
        }
        return reported;
    }
}
