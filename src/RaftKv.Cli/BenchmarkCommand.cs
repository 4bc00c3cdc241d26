using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using HdrHistogram;
using RaftKv.Client;
using Spectre.Console;

namespace RaftKv.Cli;

/// <summary>The settings a benchmark ran with, printed with its figures.</summary>
public sealed record BenchmarkSettings(
    string Target,
    string System,
    long? Operations,
    double? DurationSeconds,
    int Clients,
    int Keys,
    int ValueSize,
    double ReadRatio,
    string Consistency,
    bool Fill = false,
    int? Connections = null);

/// <summary>What a benchmark measured: throughput, latency percentiles (ms), and errors by kind.</summary>
public sealed record BenchmarkReport(
    BenchmarkSettings Settings,
    long Operations,
    long Writes,
    long Reads,
    long Errors,
    IReadOnlyDictionary<string, long> ErrorsByKind,
    double Seconds,
    double OperationsPerSecond,
    double P50Ms,
    double P90Ms,
    double P99Ms,
    double P999Ms,
    double MaxMs,
    double MeanMs);

/// <summary>
/// A load generator in the manner of etcd's benchmark tool: C clients, each with one request in flight and a session of
/// its own, against the endpoints given; the answer is throughput, latency percentiles from an HdrHistogram, and errors
/// by kind. --baseline first measures the same load against a do-nothing HTTP endpoint in this process, to show what the
/// tool can drive by itself on this machine. --target etcd drives the same load, keys and values at an etcd cluster over
/// its v3 gRPC API (<see cref="EtcdBenchmarkClients"/>), so that the two systems are measured by one tool.
/// </summary>
internal static class BenchmarkCommand
{
    public static Command Create(CliContext context)
    {
        var operations = new Option<long?>("--operations", "-n") { Description = "Stop after this many operations (default 1000 unless --duration)" };
        var duration = new Option<double?>("--duration", "-d") { Description = "Stop after this many seconds" };
        var clients = new Option<int>("--clients", "-c") { Description = "Concurrent clients, one request in flight each", DefaultValueFactory = _ => 16 };
        var keys = new Option<int>("--keys") { Description = "Distinct keys the load touches", DefaultValueFactory = _ => 1000 };
        var valueSize = new Option<int>("--value-size") { Description = "Bytes per written value", DefaultValueFactory = _ => 128 };
        var readRatio = new Option<double>("--read-ratio") { Description = "Fraction of operations that are reads, 0 to 1", DefaultValueFactory = _ => 0 };
        var consistency = new Option<string>("--consistency") { Description = "Reads: linearizable or stale", DefaultValueFactory = _ => "linearizable" };
        consistency.AcceptOnlyFromAmong("linearizable", "stale");
        var baseline = new Option<bool>("--baseline") { Description = "Also measure a do-nothing HTTP endpoint in this process first (RaftKv only)" };
        var target = new Option<string>("--target") { Description = "The system the endpoints belong to: raftkv (HTTP/JSON) or etcd (v3 gRPC, plain HTTP/2)", DefaultValueFactory = _ => "raftkv" };
        target.AcceptOnlyFromAmong("raftkv", "etcd");
        var connections = new Option<int?>("--connections") { Description = "etcd only: HTTP/2 connections the clients' gRPC calls share, round-robin (default 1, as etcd's own benchmark tool)" };
        var fill = new Option<bool>("--fill") { Description = "Write every key once, in order, then stop (a preload before reads)" };
        var command = new Command("benchmark", """
            Drive load at the cluster and report operations/s, latency p50/p90/p99/p99.9/max and errors by kind.
            Clients send to the leader they discover (followers would forward). With --target etcd the endpoints are
            etcd's client URLs; writes are KV.Put, reads KV.Range (linearizable unless --consistency stale).

            Examples:
              raft-cli benchmark --operations 1000
              raft-cli benchmark --duration 20 --clients 64 --read-ratio 0.9 --output json
              raft-cli benchmark --duration 10 --clients 64 --baseline
              raft-cli --endpoints http://127.0.0.1:2379 benchmark --target etcd --duration 10 --clients 64
              raft-cli benchmark --fill --keys 100000 --value-size 16384
            """);
        foreach (var option in new Option[] { operations, duration, clients, keys, valueSize, readRatio, consistency, baseline, target, connections, fill })
        {
            command.Options.Add(option);
        }
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            var n = result.GetValue(operations);
            var seconds = result.GetValue(duration);
            var filling = result.GetValue(fill);
            if (n is not null && seconds is not null)
            {
                throw new UsageException("benchmark: --operations or --duration, not both");
            }
            if (filling && (n is not null || seconds is not null))
            {
                throw new UsageException("--fill: writes each key once; not with --operations or --duration");
            }
            if (n is null && seconds is null)
            {
                n = filling ? result.GetValue(keys) : 1000;
            }
            var settings = new BenchmarkSettings(string.Join(",", context.Endpoints(result)), result.GetValue(target)!, n, seconds, result.GetValue(clients),
                result.GetValue(keys), result.GetValue(valueSize), result.GetValue(readRatio), result.GetValue(consistency)!, filling, result.GetValue(connections));
            Validate(settings);
            if (result.GetValue(baseline) && settings.System != "raftkv")
            {
                throw new UsageException("--baseline: the do-nothing endpoint speaks RaftKv's HTTP/1.1, not etcd's gRPC; not with --target etcd");
            }
            var json = context.Json(result);
            var reports = new List<BenchmarkReport>();
            if (result.GetValue(baseline))
            {
                await using var noop = NoopHttpServer.Start();
                reports.Add(await RunAsync(context, result, settings with { Target = "do-nothing endpoint " + noop.Address }, noop.Address, json, cancellationToken).ConfigureAwait(false));
            }
            reports.Add(await RunAsync(context, result, settings, null, json, cancellationToken).ConfigureAwait(false));
            foreach (var report in reports)
            {
                if (json)
                {
                    CliContext.WriteJson(report, CliJson.Default.BenchmarkReport);
                }
                else
                {
                    Print(report);
                }
            }
            // Operations counts failed ones too: success means some operation succeeded.
            return reports[^1].Operations > reports[^1].Errors ? ExitCodes.Ok : ExitCodes.Unavailable;
        }));
        return command;
    }

    private static void Validate(BenchmarkSettings settings)
    {
        if (settings.Operations is <= 0)
        {
            throw new UsageException("--operations: must be at least 1");
        }
        if (settings.DurationSeconds is <= 0)
        {
            throw new UsageException("--duration: must be a positive number of seconds");
        }
        if (settings.Clients is < 1 or > 4096)
        {
            throw new UsageException("--clients: between 1 and 4096");
        }
        if (settings.Keys is < 1 or > 10_000_000)
        {
            throw new UsageException("--keys: between 1 and 10000000");
        }
        if (settings.ValueSize is < 0 or > 1024 * 1024)
        {
            throw new UsageException("--value-size: between 0 and 1048576 bytes");
        }
        if (settings.ReadRatio is < 0 or > 1 || double.IsNaN(settings.ReadRatio))
        {
            throw new UsageException("--read-ratio: between 0 and 1");
        }
        if (settings.Fill && settings.ReadRatio > 0)
        {
            throw new UsageException("--fill: writes only; not with --read-ratio");
        }
        if (settings.Connections is not null && settings.System != "etcd")
        {
            throw new UsageException("--connections: only with --target etcd (each RaftKv client holds its own HTTP/1.1 connection)");
        }
        if (settings.Connections is < 1 || settings.Connections > settings.Clients)
        {
            throw new UsageException("--connections: between 1 and --clients");
        }
    }

    private static async Task<BenchmarkReport> RunAsync(CliContext context, ParseResult result, BenchmarkSettings settings, Uri? target, bool json, CancellationToken cancellationToken)
    {
        using IBenchmarkClients clients = settings.System == "etcd"
            ? await EtcdBenchmarkClients.ConnectAsync(context.Endpoints(result), settings, context.ClientOptions(result).Timeout, cancellationToken).ConfigureAwait(false)
            : await RaftKvBenchmarkClients.ConnectAsync(context.ClientOptions(result), settings, target, cancellationToken).ConfigureAwait(false);
        var histogram = new LongConcurrentHistogram(1, TimeStamp.Minutes(5), 3);
        var errors = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        long started = 0, done = 0, writes = 0, reads = 0;
        var limit = settings.Operations ?? long.MaxValue;
        var clock = Stopwatch.StartNew();
        var deadline = settings.DurationSeconds is { } s ? TimeSpan.FromSeconds(s) : TimeSpan.MaxValue;

        async Task Worker(int index)
        {
            var random = new Random(index * 7919);
            long ticket;
            while (!cancellationToken.IsCancellationRequested && clock.Elapsed < deadline && (ticket = Interlocked.Increment(ref started)) <= limit)
            {
                // --fill: the n-th operation writes the n-th key, so that every key is written once.
                var key = settings.Fill ? (int)(ticket - 1) : random.Next(settings.Keys);
                var read = random.NextDouble() < settings.ReadRatio;
                var begin = Stopwatch.GetTimestamp();
                try
                {
                    if (read)
                    {
                        await clients.ReadAsync(index, key, cancellationToken).ConfigureAwait(false);
                        Interlocked.Increment(ref reads);
                    }
                    else
                    {
                        await clients.WriteAsync(index, key, cancellationToken).ConfigureAwait(false);
                        Interlocked.Increment(ref writes);
                    }
                    histogram.RecordValue(Math.Max(1, (Stopwatch.GetTimestamp() - begin) * 1_000_000 / Stopwatch.Frequency));
                }
                catch (Exception error) when (clients.ErrorKind(error) is { } kind)
                {
                    errors.AddOrUpdate(kind, 1, (_, count) => count + 1);
                }
                Interlocked.Increment(ref done);
            }
        }

        var workers = Enumerable.Range(0, settings.Clients).Select(index => Task.Run(() => Worker(index), cancellationToken)).ToList();
        await ShowProgressAsync(settings, json, () => Interlocked.Read(ref done), clock, Task.WhenAll(workers)).ConfigureAwait(false);
        clock.Stop();
        var ok = histogram.TotalCount;
        double Ms(double percentile) => ok == 0 ? 0 : histogram.GetValueAtPercentile(percentile) / 1000.0;
        return new BenchmarkReport(settings, Interlocked.Read(ref done), writes, reads, errors.Values.Sum(), new SortedDictionary<string, long>(errors),
            clock.Elapsed.TotalSeconds, ok / clock.Elapsed.TotalSeconds, Ms(50), Ms(90), Ms(99), Ms(99.9), ok == 0 ? 0 : histogram.GetMaxValue() / 1000.0,
            ok == 0 ? 0 : histogram.GetMean() / 1000.0);
    }

    /// <summary>A live progress bar on a terminal; a plain line a second otherwise (logs, pipes, CI).</summary>
    private static async Task ShowProgressAsync(BenchmarkSettings settings, bool json, Func<long> done, Stopwatch clock, Task work)
    {
        if (json)
        {
            await work.ConfigureAwait(false);
            return;
        }
        if (!Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            await AnsiConsole.Progress().AutoClear(true).StartAsync(async progress =>
            {
                var bar = progress.AddTask("benchmark", maxValue: settings.Operations ?? (settings.DurationSeconds ?? 1) * 1000);
                while (!work.IsCompleted)
                {
                    bar.Value = settings.Operations is not null ? done() : clock.Elapsed.TotalMilliseconds;
                    bar.Description = $"{done():N0} ops, {done() / Math.Max(0.001, clock.Elapsed.TotalSeconds):N0} ops/s";
                    await Task.WhenAny(work, Task.Delay(200)).ConfigureAwait(false);
                }
                bar.Value = bar.MaxValue;
            }).ConfigureAwait(false);
        }
        else
        {
            while (!work.IsCompleted)
            {
                await Task.WhenAny(work, Task.Delay(1000)).ConfigureAwait(false);
                if (!work.IsCompleted)
                {
                    Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{clock.Elapsed.TotalSeconds,6:0.0}s  {done(),10:N0} ops  {done() / clock.Elapsed.TotalSeconds,10:N0} ops/s"));
                }
            }
        }
        await work.ConfigureAwait(false);
    }

    private static void Print(BenchmarkReport report)
    {
        var s = report.Settings;
        var table = new Table().HideHeaders().AddColumns("", "");
        table.AddRow("target", Markup.Escape(s.System == "raftkv" ? s.Target : $"{s.System} {s.Target}"));
        table.AddRow("settings", Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"{(s.Operations is { } n ? $"{n:N0} operations" : $"{s.DurationSeconds:0.#} s")}, {s.Clients} clients, {s.Keys:N0} keys, {s.ValueSize} B values, read ratio {s.ReadRatio:0.##}, {s.Consistency} reads{(s.Fill ? ", each key written once" : "")}{(s.Connections is { } c ? $", {c} connections" : "")}")));
        table.AddRow("operations", string.Create(CultureInfo.InvariantCulture, $"{report.Operations:N0} ({report.Writes:N0} writes, {report.Reads:N0} reads) in {report.Seconds:0.00} s"));
        table.AddRow("throughput", string.Create(CultureInfo.InvariantCulture, $"{report.OperationsPerSecond:N0} ops/s"));
        table.AddRow("latency ms", string.Create(CultureInfo.InvariantCulture,
            $"p50 {report.P50Ms:0.###}  p90 {report.P90Ms:0.###}  p99 {report.P99Ms:0.###}  p99.9 {report.P999Ms:0.###}  max {report.MaxMs:0.###}  mean {report.MeanMs:0.###}"));
        table.AddRow("errors", report.Errors == 0 ? "0" : Markup.Escape(string.Join(", ", report.ErrorsByKind.Select(e => $"{e.Key} {e.Value:N0}"))));
        AnsiConsole.Write(table);
    }
}

/// <summary>The clients of one benchmark run, each with one request in flight: the only part that knows the system.</summary>
internal interface IBenchmarkClients : IDisposable
{
    Task WriteAsync(int client, int key, CancellationToken cancellationToken);

    Task ReadAsync(int client, int key, CancellationToken cancellationToken);

    /// <summary>The kind an operating failure is counted under (unavailable, timed out, refused); null for anything else, which stops the run.</summary>
    string? ErrorKind(Exception error);
}

/// <summary>RaftKv over HTTP/1.1 (or HTTP/2 with --http2) and JSON: one <see cref="RaftKvClient"/> per benchmark client, each with a session of its own, on one shared handler.</summary>
internal sealed class RaftKvBenchmarkClients : IBenchmarkClients
{
    private readonly SocketsHttpHandler _handler;
    private readonly List<RaftKvClient> _clients;
    private readonly string[] _keys;
    private readonly string _value;
    private readonly Consistency _consistency;

    private RaftKvBenchmarkClients(SocketsHttpHandler handler, List<RaftKvClient> clients, BenchmarkSettings settings)
    {
        _handler = handler;
        _clients = clients;
        _keys = BenchmarkKeys.Names(settings.Keys);
        _value = new string('x', settings.ValueSize);
        _consistency = settings.Consistency == "stale" ? Consistency.Stale : Consistency.Linearizable;
    }

    /// <summary>Every client finds the leader first, so that it sends to the leader from its first request.</summary>
    public static async Task<RaftKvBenchmarkClients> ConnectAsync(RaftKvClientOptions options, BenchmarkSettings settings, Uri? target, CancellationToken cancellationToken)
    {
        var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = settings.Clients + 8,
            PooledConnectionLifetime = TimeSpan.FromMinutes(10),
            ConnectTimeout = TimeSpan.FromSeconds(2),
            // With --http2: one connection per node while its streams last (Kestrel's 100 per connection), another beyond.
            EnableMultipleHttp2Connections = true,
        };
        if (options.TrustedCa is { } ca)
        {
            // A handler shared by every benchmark client: it carries the --cacert trust itself.
            handler.SslOptions.RemoteCertificateValidationCallback = RaftKv.Contracts.TlsTrust.ServerValidator(ca);
        }
        if (target is not null)
        {
            options = options with { Endpoints = [target] };
        }
        var run = $"{Environment.ProcessId}-{Stopwatch.GetTimestamp() % 100_000}";
        var clients = Enumerable.Range(0, settings.Clients)
            .Select(i => new RaftKvClient(options with { ClientId = $"bench-{run}-{i}" }, handler))
            .ToList();
        var connected = new RaftKvBenchmarkClients(handler, clients, settings);
        try
        {
            await Task.WhenAll(clients.Select(c => c.ClusterStatusAsync(cancellationToken))).ConfigureAwait(false);
            return connected;
        }
        catch
        {
            connected.Dispose();
            throw;
        }
    }

    public Task WriteAsync(int client, int key, CancellationToken cancellationToken) => _clients[client].SetAsync(_keys[key], _value, cancellationToken);

    public Task ReadAsync(int client, int key, CancellationToken cancellationToken) => _clients[client].GetAsync(_keys[key], _consistency, cancellationToken);

    public string? ErrorKind(Exception error) => error switch
    {
        ClusterUnavailableException => "unavailable",
        OutcomeUnknownException => "outcome-unknown",
        InvalidRequestException invalid => "rejected-" + invalid.Status.ToString(CultureInfo.InvariantCulture),
        RaftKvException => "other",
        _ => null,
    };

    public void Dispose()
    {
        foreach (var client in _clients)
        {
            client.Dispose();
        }
        _handler.Dispose();
    }
}

/// <summary>The key space both systems are driven over: the same names, so that the same load means the same keys.</summary>
internal static class BenchmarkKeys
{
    public static string[] Names(int count) =>
        [.. Enumerable.Range(0, count).Select(k => "bench-" + k.ToString(CultureInfo.InvariantCulture))];
}
