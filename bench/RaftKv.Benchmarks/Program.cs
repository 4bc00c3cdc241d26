using System.Diagnostics;
using System.Globalization;
using RaftKv.Benchmarks;

// Benchmarks print figures; they are not tests. Run them in Release on an idle machine:
//   dotnet run -c Release --project bench/RaftKv.Benchmarks -- wal [seconds-per-run]
//   dotnet run -c Release --project bench/RaftKv.Benchmarks -- restart [entries]
//   dotnet run -c Release --project bench/RaftKv.Benchmarks -- soak [minutes]     (fault injection; root for partitions)
//   DOTNET_gcServer=1 dotnet run -c Release --project bench/RaftKv.Benchmarks -- snapshot [keys] [value-bytes]   (the server's GC)
var command = args.Length > 0 ? args[0] : "help";
var directory = Path.Combine(Path.GetTempPath(), "raftkv-bench-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
try
{
    switch (command)
    {
        case "wal":
            WalBenchmark.Run(directory, args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 2.0);
            return 0;
        case "restart":
            RestartBenchmark.Run(directory, args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1_000_000);
            return 0;
        case "snapshot":
            SnapshotBenchmark.Run(directory, args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1_000_000,
                args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 128);
            return 0;
        case "soak":
            return await Soak.RunAsync(args.Length > 1 ? double.Parse(args[1], CultureInfo.InvariantCulture) : 30.0);
        default:
            Console.WriteLine("usage: RaftKv.Benchmarks wal [seconds-per-run] | restart [entries] | snapshot [keys] [value-bytes] | soak [minutes]");
            return command == "help" ? 0 : 2;
    }
}
finally
{
    if (Directory.Exists(directory))
    {
        Directory.Delete(directory, recursive: true);
    }
    Debug.Assert(!Directory.Exists(directory));
}
