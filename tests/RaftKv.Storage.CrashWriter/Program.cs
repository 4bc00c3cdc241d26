using System.Globalization;
using RaftKv.RaftCore;
using RaftKv.Storage;
using RaftKv.Storage.CrashWriter;

// Appends batches of 128-byte entries to a real write-ahead log for ever, printing "persisted N" after every fsync that
// returned. The storage tests kill it with SIGKILL in mid-stream and check that every entry it reported is there.
// Usage: RaftKv.Storage.CrashWriter <directory> <seed>
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: RaftKv.Storage.CrashWriter <directory> <seed>");
    return 2;
}
var directory = args[0];
var random = new Random(int.Parse(args[1], CultureInfo.InvariantCulture));
Directory.CreateDirectory(directory);
using var store = new WalLogStore(new PhysicalFileSystem(directory), new StorageOptions { SegmentBytes = 256 * 1024 });
var state = store.Load();
var next = state.LastIndex.Next();
store.SetHardState(new HardState(new Term(1), NodeId.None, LogIndex.Zero));
using var output = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = true };
output.WriteLine($"start {state.LastIndex.Value}");
while (true)
{
    var count = random.Next(1, 64);
    var entries = new LogEntry[count];
    for (var i = 0; i < count; i++)
    {
        entries[i] = new LogEntry(next, new Term(1), EntryKind.Normal, EntryPayload.For(next));
        next = next.Next();
    }
    store.Append(entries);
    store.Sync();
    output.WriteLine($"persisted {entries[^1].Index.Value}");
}
