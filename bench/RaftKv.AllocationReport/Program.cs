using System.Globalization;
using Microsoft.Diagnostics.Tracing.Etlx;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

// Where a process's bytes go, from a `dotnet-trace collect --profile gc-verbose` file: the runtime samples an allocation
// about every 100 KB (GCAllocationTick) with its type and stack. Prints the sampled bytes by type, by the frames on the
// stack (each counted once per sample), and, for the types named, by their nearest three frames.
//   RaftKv.AllocationReport TRACE.nettrace [TOP] [TYPE-SUBSTRING ...]
if (args.Length < 1)
{
    Console.Error.WriteLine("usage: RaftKv.AllocationReport TRACE.nettrace [TOP] [TYPE-SUBSTRING ...]");
    return 2;
}
var top = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 30;
var wanted = args.Skip(2).ToArray();
using var log = new TraceLog(TraceLog.CreateFromEventPipeDataFile(args[0]));
var byType = new Dictionary<string, long>(StringComparer.Ordinal);
var byFrame = new Dictionary<string, long>(StringComparer.Ordinal);
var byWantedStack = new Dictionary<string, long>(StringComparer.Ordinal);
long total = 0;
foreach (var data in log.Events)
{
    if (data is not GCAllocationTickTraceData tick)
    {
        continue;
    }
    var bytes = tick.AllocationAmount64;
    total += bytes;
    byType[tick.TypeName] = byType.GetValueOrDefault(tick.TypeName) + bytes;
    var frames = new List<string>();
    for (var stack = data.CallStack(); stack is not null && frames.Count < 60; stack = stack.Caller)
    {
        var name = stack.CodeAddress.FullMethodName;
        if (!string.IsNullOrEmpty(name))
        {
            frames.Add(name.Length > 160 ? name[..160] : name);
        }
    }
    foreach (var frame in frames.Distinct(StringComparer.Ordinal))
    {
        byFrame[frame] = byFrame.GetValueOrDefault(frame) + bytes;
    }
    if (wanted.Any(w => tick.TypeName.Contains(w, StringComparison.Ordinal)))
    {
        var key = tick.TypeName + ": " + string.Join(" <- ", frames.Take(3).Select(f => f.Length > 90 ? f[..90] : f));
        byWantedStack[key] = byWantedStack.GetValueOrDefault(key) + bytes;
    }
}
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{total:N0} bytes in the allocation samples"));
Print("by type", byType);
Print("by frame on the stack", byFrame);
if (wanted.Length > 0)
{
    Print("the types named, by their nearest frames", byWantedStack);
}
return 0;

void Print(string title, Dictionary<string, long> counts)
{
    Console.WriteLine(title + ":");
    foreach (var (name, bytes) in counts.OrderByDescending(p => p.Value).Take(top))
    {
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {100.0 * bytes / Math.Max(1, total),5:F1}%  {name}"));
    }
}
