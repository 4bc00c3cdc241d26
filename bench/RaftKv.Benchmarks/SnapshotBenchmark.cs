using System.Diagnostics;
using System.Globalization;
using System.Runtime;
using RaftKv.RaftCore;
using RaftKv.StateMachine;
using RaftKv.Storage;

namespace RaftKv.Benchmarks;

/// <summary>
/// Where the time of a snapshot of the KV store goes, and its managed memory, in one process: N keys written by Apply as a
/// node writes them (one Set per key, sessions of 64 clients), then the snapshot written and restored the way the node
/// does it (<see cref="FileSnapshotStore"/>: a pwrite or pread per call the BinaryWriter or BinaryReader makes), beside
/// the same through a 1 MiB <see cref="BufferedStream"/>, and beside the parts of it done alone on the same data: the
/// encoding to a null stream, the decoding, the map built from scratch, a walk of it. Scripts/
/// scale.sh measures the same on a running cluster; this says which part of it costs what.
/// </summary>
internal static class SnapshotBenchmark
{
    private static readonly ClusterConfig Config = ClusterConfig.Create([new NodeId(1)]);

    public static void Run(string directory, int keys, int valueBytes)
    {
        Directory.CreateDirectory(directory);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"# snapshot of {keys:N0} keys of {valueBytes} B ('bench-0'...), {Environment.ProcessorCount} cores, server GC {GCSettings.IsServerGC}, directory {directory}"));
        var names = Enumerable.Range(0, keys).Select(k => "bench-" + k.ToString(CultureInfo.InvariantCulture)).ToArray();
        var raw = names.Sum(n => (long)n.Length) + ((long)keys * valueBytes);
        var value = new string('x', valueBytes);

        var before = GC.GetTotalMemory(forceFullCollection: true);
        var clock = Stopwatch.StartNew();
        var machine = new KvStateMachine();
        for (var k = 0; k < keys; k++)
        {
            var command = new KvCommand(KvOperation.Set, names[k], value, ClientId: "bench-client-" + (k % 64).ToString(CultureInfo.InvariantCulture), Sequence: (ulong)(k / 64) + 1);
            machine.Apply(new LogEntry(new LogIndex((ulong)k + 1), new Term(1), EntryKind.Normal, command.Encode()));
        }
        var applied = clock.Elapsed;
        var after = GC.GetTotalMemory(forceFullCollection: true);
        // The key names above are kept alive by this method, not by the store: the store's own copies came from the commands.
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"# raw key + value bytes {raw:N0}; the store's managed memory after a full GC {after - before:N0} B = {(double)(after - before) / keys:N0} B per key = {(double)(after - before) / raw:0.00}x raw (watch history of 10,000 changes and 64 sessions included); {keys:N0} applies took {applied.TotalSeconds:0.0} s"));
        Console.WriteLine();
        Console.WriteLine("| step | first run, s (of which GC pauses) | second run, s (GC pauses) | note |");
        Console.WriteLine("|---|---:|---:|---|");
        var capture = machine.CaptureSnapshot();

        Row("snapshot encoded to a null stream (BinaryWriter, no I/O)", () => capture.WriteTo(Stream.Null), "CPU of WriteTo alone");
        var store = new FileSnapshotStore(new PhysicalFileSystem(directory));
        var plain = new SnapshotMetadata(new LogIndex((ulong)keys), new Term(1), Config);
        var buffered = new SnapshotMetadata(new LogIndex((ulong)keys + 1), new Term(1), Config);
        Row("snapshot written as the node writes it (FileSnapshotStore: CRC32C, a pwrite per call, fsync)", () =>
        {
            using var writer = store.Create(plain);
            capture.WriteTo(writer.Stream);
            writer.Commit();
        }, () => string.Create(CultureInfo.InvariantCulture, $"file {store.SizeOf(plain):N0} B"));
        Row("the same through a 1 MiB BufferedStream", () =>
        {
            using var writer = store.Create(buffered);
            using (var stream = new BufferedStream(writer.Stream, 1 << 20))
            {
                capture.WriteTo(stream);
                stream.Flush();
                writer.Commit();
            }
        }, "what a buffer in FileSnapshotStore's writer would give");

        Row("snapshot file opened: the whole file's CRC32C checked (FileSnapshotStore.OpenRead)", () => store.OpenRead(plain).Dispose(), "1 MiB reads");
        Row("snapshot restored as the node restores it (OpenRead + KvStateMachine.Restore, a pread per call)", () =>
        {
            using var stream = store.OpenRead(plain);
            new KvStateMachine().Restore(stream);
        }, "");
        Row("the same through a 1 MiB BufferedStream", () =>
        {
            using var stream = new BufferedStream(store.OpenRead(plain), 1 << 20);
            new KvStateMachine().Restore(stream);
        }, "what a buffer in FileSnapshotStore's reader would give");

        // The parts, each alone on the same data.
        var image = new MemoryStream();
        capture.WriteTo(image);
        Row("restore from memory (KvStateMachine.Restore over a MemoryStream)", () =>
        {
            image.Position = 0;
            new KvStateMachine().Restore(image);
        }, "CPU of Restore alone");
        Row("  of which: decoding the items (BinaryReader over a MemoryStream, nothing built)", () =>
        {
            image.Position = 0;
            using var reader = new BinaryReader(image, System.Text.Encoding.UTF8, leaveOpen: true);
            reader.ReadUInt32();
            reader.ReadUInt64();
            var count = reader.ReadInt32();
            for (var i = 0; i < count; i++)
            {
                reader.ReadString();
                reader.ReadString();
                reader.ReadUInt64();
                reader.ReadUInt64();
                reader.ReadUInt64();
            }
        }, "two strings and three numbers per item");
        var bytes = System.Text.Encoding.UTF8.GetBytes(value);
        var sorted = names.Order(StringComparer.Ordinal).Select((name, k) => new KeyValuePair<string, KvItem>(name, new KvItem(bytes, (ulong)k + 1, (ulong)k + 1, 0))).ToList();
        KvMap<KvItem>? map = null;
        Row("  of which: the map built from items in key order (KvMap.FromSorted)", () => map = KvMap<KvItem>.FromSorted(sorted), "what Restore builds; value bytes shared");
        Row("a walk of the map in key order (what WriteTo walks)", () =>
        {
            long count = 0;
            foreach (var _ in map!.All())
            {
                count++;
            }
        }, "");
        GC.KeepAlive(machine);
        Directory.Delete(directory, recursive: true);
    }

    private static void Row(string step, Action action, string note) => Row(step, action, () => note);

    /// <summary>Runs a step twice, after a full GC each time, and prints both: the first pays for compiling its code (tier 0).</summary>
    private static void Row(string step, Action action, Func<string> note)
    {
        var seconds = new double[2];
        var paused = new double[2];
        for (var i = 0; i < seconds.Length; i++)
        {
            GC.Collect();
            var pausedBefore = GC.GetTotalPauseDuration();
            var clock = Stopwatch.StartNew();
            action();
            seconds[i] = clock.Elapsed.TotalSeconds;
            paused[i] = (GC.GetTotalPauseDuration() - pausedBefore).TotalSeconds;
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {step} | {seconds[0]:0.00} ({paused[0]:0.00}) | {seconds[1]:0.00} ({paused[1]:0.00}) | {note()} |"));
    }
}
