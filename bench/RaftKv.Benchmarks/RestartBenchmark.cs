using System.Diagnostics;
using System.Globalization;
using RaftKv.RaftCore;
using RaftKv.Storage;

namespace RaftKv.Benchmarks;

/// <summary>
/// How long a node takes to open its log: with N entries of 128 bytes, and with N entries after 4·N more were compacted
/// away. The second must not cost more than the first: compacted segments are deleted, and a leftover one is skipped
/// unread.
/// </summary>
internal static class RestartBenchmark
{
    private static readonly ClusterConfig Config = ClusterConfig.Create([new NodeId(1)]);

    public static void Run(string directory, int entries)
    {
        Console.WriteLine($"# log restart time, 128-byte entries, 64 MiB segments, page cache warm; directory {directory}");
        Console.WriteLine();
        Console.WriteLine("| log on disk | live entries | compacted entries | segments | bytes | log Load() | node ready (log + Raft core) |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        Measure(Path.Combine(directory, "plain"), entries, compacted: 0);
        Measure(Path.Combine(directory, "history"), entries, compacted: 4L * entries);
    }

    private static void Measure(string directory, int live, long compacted)
    {
        Directory.CreateDirectory(directory);
        var files = new PhysicalFileSystem(directory);
        long segments, bytes;
        using (var store = new WalLogStore(files))
        {
            store.Load();
            store.SetHardState(new HardState(new Term(1), NodeId.None, LogIndex.Zero));
            var value = new byte[128];
            var batch = new LogEntry[1024];
            var total = compacted + live;
            for (long index = 1; index <= total;)
            {
                var count = (int)Math.Min(batch.Length, total - index + 1);
                for (var i = 0; i < count; i++)
                {
                    batch[i] = index + i == 1
                        ? PersistentState.Bootstrap(Config).Entries[0]
                        : new LogEntry(new LogIndex((ulong)(index + i)), new Term(1), EntryKind.Normal, value);
                }
                store.Append(batch.AsSpan(0, count).ToArray());
                store.Sync();
                index += count;
            }
            if (compacted > 0)
            {
                store.Compact(new LogIndex((ulong)compacted), new Term(1));
            }
            store.SetHardState(new HardState(new Term(1), NodeId.None, new LogIndex((ulong)total)));
            segments = store.SegmentCount;
            bytes = store.SizeBytes;
        }

        // Best of three opens.
        var best = TimeSpan.MaxValue;
        var bestNode = TimeSpan.MaxValue;
        PersistentState? state = null;
        for (var i = 0; i < 3; i++)
        {
            var clock = Stopwatch.StartNew();
            using var store = new WalLogStore(files);
            state = store.Load();
            var loaded = clock.Elapsed;
            var snapshot = compacted > 0 ? new SnapshotMetadata(new LogIndex((ulong)compacted), new Term(1), Config) : null;
            _ = new RaftNode(new RaftOptions { Id = new NodeId(1), RandomSeed = 1 }, state with { Snapshot = snapshot });
            clock.Stop();
            best = loaded < best ? loaded : best;
            bestNode = clock.Elapsed < bestNode ? clock.Elapsed : bestNode;
        }
        if (state!.Entries.Count != live)
        {
            throw new InvalidOperationException($"expected {live} entries, loaded {state.Entries.Count}");
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {(compacted > 0 ? "after compaction" : "never compacted")} | {live:N0} | {compacted:N0} | {segments} | {bytes / (1024.0 * 1024):N0} MiB | {best.TotalMilliseconds:N0} ms | {bestNode.TotalMilliseconds:N0} ms |"));
        Directory.Delete(directory, recursive: true);
    }
}
