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
    long? Operations,
    double? DurationSeconds,
    int Clients,
    int Keys,
    int ValueSize,
    double ReadRatio,
    string Consistency);

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
/// tool can drive by itself on this machine.
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
        var baseline = new Option<bool>("--baseline") { Description = "Also measure a do-nothing HTTP endpoint in this process first" };
        var command = new Command("benchmark", """
            Drive load at the cluster and report operations/s, latency p50/p90/p99/p99.9/max and errors by kind.
            Clients send to the leader they discover (followers would forward).

            Examples:
              raft-cli benchmark --operations 1000
              raft-cli benchmark --duration 20 --clients 64 --read-ratio 0.9 --output json
              raft-cli benchmark --duration 10 --clients 64 --baseline
            """);
        foreach (var option in new Option[] { operations, duration, clients, keys, valueSize, readRatio, consistency, baseline })
        {
            command.Options.Add(option);
        }
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            var n = result.GetValue(operations);
            var seconds = result.GetValue(duration);
            if (n is not null && seconds is not null)
            {
                throw new UsageException("benchmark: --operations or --duration, not both");
            }
            if (n is null && seconds is null)
            {
                n = 1000;
            }
            var settings = new BenchmarkSettings(string.Join(",", context.Endpoints(result)), n, seconds, result.GetValue(clients),
                result.GetValue(keys), result.GetValue(valueSize), result.GetValue(readRatio), result.GetValue(consistency)!);
            Validate(settings);
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
    }

    private static async Task<BenchmarkReport> RunAsync(CliContext context, ParseResult result, BenchmarkSettings settings, Uri? target, bool json, CancellationToken cancellationToken)
    {
        var options = context.ClientOptions(result);
        using var handler = new SocketsHttpHandler
        {
            MaxConnectionsPerServer = settings.Clients + 8,
            PooledConnectionLifetime = TimeSpan.FromMinutes(10),
            ConnectTimeout = TimeSpan.FromSeconds(2),
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
        // Every client finds the leader first, so that it sends to the leader from its first request.
        await Task.WhenAll(clients.Select(c => c.ClusterStatusAsync(cancellationToken))).ConfigureAwait(false);
        var value = new string('x', settings.ValueSize);
        var keyNames = Enumerable.Range(0, settings.Keys).Select(k => "bench-" + k.ToString(CultureInfo.InvariantCulture)).ToArray();
        var histogram = new LongConcurrentHistogram(1, TimeStamp.Minutes(5), 3);
        var errors = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        long started = 0, done = 0, writes = 0, reads = 0;
        var limit = settings.Operations ?? long.MaxValue;
        var clock = Stopwatch.StartNew();
        var deadline = settings.DurationSeconds is { } s ? TimeSpan.FromSeconds(s) : TimeSpan.MaxValue;
        var mode = settings.Consistency == "stale" ? Consistency.Stale : Consistency.Linearizable;

        async Task Worker(int index, RaftKvClient client)
        {
            var random = new Random(index * 7919);
            while (!cancellationToken.IsCancellationRequested && clock.Elapsed < deadline && Interlocked.Increment(ref started) <= limit)
            {
                var key = keyNames[random.Next(keyNames.Length)];
                var read = random.NextDouble() < settings.ReadRatio;
                var begin = Stopwatch.GetTimestamp();
                try
                {
                    if (read)
                    {
                        await client.GetAsync(key, mode, cancellationToken).ConfigureAwait(false);
                        Interlocked.Increment(ref reads);
                    }
                    else
                    {
                        await client.SetAsync(key, value, cancellationToken).ConfigureAwait(false);
                        Interlocked.Increment(ref writes);
                    }
                    histogram.RecordValue(Math.Max(1, (Stopwatch.GetTimestamp() - begin) * 1_000_000 / Stopwatch.Frequency));
                }
                catch (RaftKvException error)
                {
                    errors.AddOrUpdate(Kind(error), 1, (_, count) => count + 1);
                }
                Interlocked.Increment(ref done);
            }
        }

        var workers = clients.Select((client, index) => Task.Run(() => Worker(index, client), cancellationToken)).ToList();
        await ShowProgressAsync(settings, json, () => Interlocked.Read(ref done), clock, Task.WhenAll(workers)).ConfigureAwait(false);
        clock.Stop();
        foreach (var client in clients)
        {
            client.Dispose();
        }
        var ok = histogram.TotalCount;
        double Ms(double percentile) => ok == 0 ? 0 : histogram.GetValueAtPercentile(percentile) / 1000.0;
        return new BenchmarkReport(settings, Interlocked.Read(ref done), writes, reads, errors.Values.Sum(), new SortedDictionary<string, long>(errors),
            clock.Elapsed.TotalSeconds, ok / clock.Elapsed.TotalSeconds, Ms(50), Ms(90), Ms(99), Ms(99.9), ok == 0 ? 0 : histogram.GetMaxValue() / 1000.0,
            ok == 0 ? 0 : histogram.GetMean() / 1000.0);
    }

    private static string Kind(RaftKvException error) => error switch
    {
        ClusterUnavailableException => "unavailable",
        OutcomeUnknownException => "outcome-unknown",
        InvalidRequestException invalid => "rejected-" + invalid.Status.ToString(CultureInfo.InvariantCulture),
        _ => "other",
    };

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
        table.AddRow("target", Markup.Escape(s.Target));
        table.AddRow("settings", Markup.Escape(string.Create(CultureInfo.InvariantCulture,
            $"{(s.Operations is { } n ? $"{n:N0} operations" : $"{s.DurationSeconds:0.#} s")}, {s.Clients} clients, {s.Keys:N0} keys, {s.ValueSize} B values, read ratio {s.ReadRatio:0.##}, {s.Consistency} reads")));
        table.AddRow("operations", string.Create(CultureInfo.InvariantCulture, $"{report.Operations:N0} ({report.Writes:N0} writes, {report.Reads:N0} reads) in {report.Seconds:0.00} s"));
        table.AddRow("throughput", string.Create(CultureInfo.InvariantCulture, $"{report.OperationsPerSecond:N0} ops/s"));
        table.AddRow("latency ms", string.Create(CultureInfo.InvariantCulture,
            $"p50 {report.P50Ms:0.###}  p90 {report.P90Ms:0.###}  p99 {report.P99Ms:0.###}  p99.9 {report.P999Ms:0.###}  max {report.MaxMs:0.###}  mean {report.MeanMs:0.###}"));
        table.AddRow("errors", report.Errors == 0 ? "0" : Markup.Escape(string.Join(", ", report.ErrorsByKind.Select(e => $"{e.Key} {e.Value:N0}"))));
        AnsiConsole.Write(table);
    }
}
