using System.Diagnostics;
using System.Text.RegularExpressions;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cluster.Tests;

/// <summary>What an operator touches: the quick start, the README's examples, options, metrics, the cluster script.</summary>
public sealed partial class OperationsTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Bad_options_stop_the_process_with_one_clear_line_per_bad_value()
    {
        using var process = Process.Start(new ProcessStartInfo("dotnet",
            ["exec", Paths.ServerDll, "--node-id", "first", "--http", "nowhere", "--TickMs=0", "--peers", "n2=http://127.0.0.1:9999",
            "--election-timeout-ticks", "1", "--tick-mss", "5"])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
            Environment = { ["RAFTKV_Transport__OutboxCapacity"] = "0", ["RAFTKV_Kv__MaxSessions"] = "0" },
        })!;
        try
        {
            var errors = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();

            process.ExitCode.Should().Be(2);
            var lines = errors.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            lines.Should().Contain(l => l.StartsWith("raftkv: RaftKv:Node:NodeId: 'first'", StringComparison.Ordinal));
            lines.Should().Contain(l => l.StartsWith("raftkv: RaftKv:Node:Http: 'nowhere'", StringComparison.Ordinal));
            lines.Should().Contain(l => l.StartsWith("raftkv: RaftKv:Node:TickMs: 0 is outside", StringComparison.Ordinal));
            lines.Should().Contain(l => l.StartsWith("raftkv: RaftKv:Raft:ElectionTimeoutTicks: must be at least 2", StringComparison.Ordinal));
            lines.Should().Contain(l => l.StartsWith("raftkv: RaftKv:Transport:OutboxCapacity: must be at least 1", StringComparison.Ordinal));
            lines.Should().Contain(l => l.StartsWith("raftkv: RaftKv:Kv:MaxSessions: 0 is outside", StringComparison.Ordinal));
            lines.Should().Contain(l => l.StartsWith("raftkv: command line: '--tick-mss' is not a setting", StringComparison.Ordinal));
            lines.Should().OnlyContain(l => l.StartsWith("raftkv: ", StringComparison.Ordinal), "one line per bad value, no stack trace");
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        }
    }

    [SkippableFact]
    public async Task Metrics_pass_promtool_check_metrics()
    {
        var promtool = new[] { "/usr/bin/promtool", "/usr/local/bin/promtool" }.FirstOrDefault(File.Exists);
        Skip.If(promtool is null, "promtool is not installed (Debian package 'prometheus'; .ci/run installs it)");
        await using var cluster = await LocalCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(15));
        using (await LocalCluster.SetAsync(leader, "m", "1"))
        {
        }

        foreach (var node in cluster.Nodes)
        {
            var metrics = await node.Client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            var check = Process.Start(new ProcessStartInfo(promtool!, ["check", "metrics"]) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true })!;
            await check.StandardInput.WriteAsync(metrics);
            check.StandardInput.Close();
            var problems = await check.StandardError.ReadToEndAsync() + await check.StandardOutput.ReadToEndAsync();
            await check.WaitForExitAsync();

            check.ExitCode.Should().Be(0, $"promtool on {node.NodeId}'s metrics said: {problems}");
            metrics.Should().Contain("raftkv_commit_index").And.Contain("raftkv_peer_lag_entries");
            // The process and the runtime (issue 15), each with a value a live process cannot report as 0.
            var samples = MetricSamples(metrics);
            foreach (var series in new[]
            {
                "process_cpu_seconds_total", "process_working_set_bytes", "process_num_threads", "process_start_time_seconds",
                "dotnet_total_memory_bytes", "dotnet_gc_heap_size_bytes", "dotnet_gc_allocated_bytes_total",
                "dotnet_threadpool_threads", "dotnet_threadpool_completed_items_total",
            })
            {
                samples.Should().ContainKey(series, $"{node.NodeId}'s /metrics shows the process and the runtime");
                samples[series].Should().BePositive($"{series} on {node.NodeId}");
            }
            samples.Keys.Should().Contain("dotnet_collection_count_total{generation=\"0\"}");
        }
    }

    /// <summary>Each sample line of a Prometheus text page, as series (name and labels) → value.</summary>
    internal static Dictionary<string, double> MetricSamples(string page) =>
        page.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Where(line => !line.StartsWith('#'))
            .Select(line => (Series: line[..line.LastIndexOf(' ')], Value: line[(line.LastIndexOf(' ') + 1)..]))
            .ToDictionary(s => s.Series, s => double.TryParse(s.Value, System.Globalization.CultureInfo.InvariantCulture, out var value) ? value : double.NaN);

    [Fact]
    public async Task The_readme_curl_examples_work_as_written_against_the_quick_start_server()
    {
        var examples = ReadmeExamples();
        examples.Should().HaveCountGreaterThan(3, "the README's quick start shows its curl examples");
        var ports = FreePorts.Take(2);
        var directory = Path.Combine(Path.GetTempPath(), "raftkv-readme-" + Guid.NewGuid().ToString("N")[..8]);
        // The quick start with its defaults, but on free ports: the examples' 127.0.0.1:8080 is rewritten to match.
        await using var server = ServerProcess.Start("n1", ports[0], ports[1], Path.Combine(directory, "data"),
            ["--http", $"http://127.0.0.1:{ports[0]}", "--peer", $"http://127.0.0.1:{ports[1]}", "--data-dir", Path.Combine(directory, "data")]);
        await server.WaitUntilServingAsync(TimeSpan.FromSeconds(30));
        for (var i = 0; i < 100 && !(await server.Client.GetAsync(new Uri("/health/ready", UriKind.Relative))).IsSuccessStatusCode; i++)
        {
            await Task.Delay(50);
        }

        foreach (var (command, expected) in examples)
        {
            var run = command.Replace("127.0.0.1:8080", $"127.0.0.1:{ports[0]}", StringComparison.Ordinal);
            var shell = Process.Start(new ProcessStartInfo("bash", ["-c", run]) { RedirectStandardOutput = true, RedirectStandardError = true })!;
            var printed = (await shell.StandardOutput.ReadToEndAsync()).Trim();
            await shell.WaitForExitAsync();
            output.WriteLine($"$ {command}\n{printed}");

            shell.ExitCode.Should().Be(0, command);
            Normalize(printed).Should().Be(Normalize(expected), $"the README shows what `{command}` prints (numbers aside)");
        }
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // The server's log may still be open.
        }
    }

    [Fact]
    public async Task The_cluster_script_starts_three_nodes_in_the_background_and_stops_them()
    {
        var port = FreePorts.Take(1)[0];
        var directory = Path.Combine(Path.GetTempPath(), "raftkv-script-" + Guid.NewGuid().ToString("N")[..8]);
        var environment = new Dictionary<string, string>
        {
            ["RAFTKV_CLUSTER_DIR"] = directory,
            ["RAFTKV_CLUSTER_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["RAFTKV_CLUSTER_CONFIGURATION"] = Paths.ServerDll.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug",
            ["RAFTKV_CLUSTER_SKIP_BUILD"] = "1",
        };
        try
        {
            (await Script("start", environment)).Should().Contain("started n1..n3");
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var status = await Script("status", environment);
            status.Should().Contain("n1").And.Contain("n3");

            var pids = Directory.GetFiles(directory, "n*.pid").Select(File.ReadAllText).Select(int.Parse).ToList();
            pids.Should().HaveCount(3);
            (await Script("stop", environment)).Should().Contain("stopped");
            pids.Should().OnlyContain(pid => !IsRunning(pid));
        }
        finally
        {
            await Script("stop", environment);
            Directory.Delete(directory, recursive: true);
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static async Task<string> Script(string verb, Dictionary<string, string> environment)
    {
        var start = new ProcessStartInfo("bash", [Path.Combine(Paths.Repository, "scripts", "cluster.sh"), verb]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }
        using var process = Process.Start(start)!;
        var text = await process.StandardOutput.ReadToEndAsync() + await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return text;
    }

    /// <summary>The curl commands between the README's example markers, each with the output line ("# → ...") it shows.</summary>
    private static List<(string Command, string Expected)> ReadmeExamples()
    {
        var text = File.ReadAllText(Path.Combine(Paths.Repository, "README.md"));
        var start = text.IndexOf("<!-- curl-examples -->", StringComparison.Ordinal);
        var end = text.IndexOf("<!-- /curl-examples -->", StringComparison.Ordinal);
        var lines = text[start..end].Split('\n');
        var examples = new List<(string, string)>();
        for (var i = 0; i < lines.Length; i++)
        {
            if (!lines[i].StartsWith("curl ", StringComparison.Ordinal))
            {
                continue;
            }
            var command = lines[i];
            while (command.EndsWith('\\'))
            {
                command = command[..^1] + " " + lines[++i].Trim();
            }
            var expected = lines[i + 1].StartsWith("# → ", StringComparison.Ordinal) ? lines[i + 1]["# → ".Length..] : "";
            examples.Add((command, expected));
        }
        return examples;
    }

    private static string Normalize(string text) => Digits().Replace(text.Trim(), "N");

    [GeneratedRegex("[0-9]+")]
    private static partial Regex Digits();
}
