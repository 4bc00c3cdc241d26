using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using RaftKv.Testing.Processes;

namespace RaftKv.Cli.Tests;

/// <summary>
/// `raft-cli benchmark --target etcd` against a real etcd (Debian's etcd-server, which CI installs; skipped where etcd
/// is not on the machine): the load is etcd's own KV.Put and KV.Range, and what it writes is what etcd then holds,
/// read back through etcd's JSON gateway rather than through the code under test.
/// </summary>
public sealed class EtcdBenchmarkTests
{
    [SkippableFact]
    public async Task The_etcd_mode_drives_puts_and_ranges_and_writes_each_key_it_fills()
    {
        await using var etcd = await EtcdProcess.StartAsync();

        var mixed = await Cli.RunAsync("--endpoints", etcd.Endpoint, "benchmark", "--target", "etcd", "--operations", "300", "--clients", "4",
            "--keys", "50", "--read-ratio", "0.5", "--output", "json");
        var fill = await Cli.RunAsync("--endpoints", etcd.Endpoint, "benchmark", "--target", "etcd", "--fill", "--keys", "20", "--value-size", "7",
            "--clients", "3", "--output", "json");

        mixed.ExitCode.Should().Be(0, mixed.ToString());
        using (var report = JsonDocument.Parse(mixed.Output))
        {
            report.RootElement.GetProperty("operations").GetInt64().Should().Be(300);
            report.RootElement.GetProperty("errors").GetInt64().Should().Be(0);
            report.RootElement.GetProperty("reads").GetInt64().Should().BeInRange(100, 200, "half of 300, give or take chance");
            report.RootElement.GetProperty("settings").GetProperty("system").GetString().Should().Be("etcd");
        }
        fill.ExitCode.Should().Be(0, fill.ToString());
        using (var report = JsonDocument.Parse(fill.Output))
        {
            report.RootElement.GetProperty("writes").GetInt64().Should().Be(20);
        }
        (await etcd.RangeCountAsync("bench-", "bench.")).Should().BeInRange(20, 50, "the fill wrote 20 keys, the mixed load some of its 50");
        (await etcd.ValueAsync("bench-0")).Should().Be("xxxxxxx");
        (await etcd.ValueAsync("bench-19")).Should().Be("xxxxxxx");
    }

    [Fact]
    public async Task An_etcd_endpoint_that_does_not_answer_is_exit_code_5_naming_it()
    {
        var port = FreePorts.Take(1)[0];

        var result = await Cli.RunAsync("--endpoints", $"http://127.0.0.1:{port}", "benchmark", "--target", "etcd", "--operations", "10");

        result.ExitCode.Should().Be(5, result.ToString());
        result.Error.Should().Contain("no etcd endpoint is the leader").And.Contain($"127.0.0.1:{port}");
        result.Error.Should().NotContain("   at ");
    }

    /// <summary>A one-member etcd on free loopback ports in a temporary directory, stopped and removed on dispose.</summary>
    private sealed class EtcdProcess : IAsyncDisposable
    {
        private const string Binary = "/usr/bin/etcd";
        private readonly Process _process;
        private readonly string _directory;
        private readonly HttpClient _http;

        private EtcdProcess(Process process, string directory, string endpoint)
        {
            _process = process;
            _directory = directory;
            Endpoint = endpoint;
            _http = new HttpClient { BaseAddress = new Uri(endpoint), Timeout = TimeSpan.FromSeconds(10) };
        }

        public string Endpoint { get; }

        public static async Task<EtcdProcess> StartAsync()
        {
            Skip.IfNot(File.Exists(Binary), "etcd is not installed (apt-get install etcd-server)");
            var ports = FreePorts.Take(2);
            var directory = Path.Combine(Path.GetTempPath(), "raftkv-etcd-" + Guid.NewGuid().ToString("N")[..8]);
            var client = $"http://127.0.0.1:{ports[0]}";
            var peer = $"http://127.0.0.1:{ports[1]}";
            var start = new ProcessStartInfo(Binary,
            [
                "--name", "e1", "--data-dir", Path.Combine(directory, "data"), "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--initial-cluster", $"e1={peer}", "--logger", "zap",
            ])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            var process = Process.Start(start)!;
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var etcd = new EtcdProcess(process, directory, client);
            var clock = Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    if ((await etcd._http.GetStringAsync(new Uri("/health", UriKind.Relative))).Contains("\"health\":\"true\"", StringComparison.Ordinal))
                    {
                        return etcd;
                    }
                }
                catch (HttpRequestException) when (clock.Elapsed < TimeSpan.FromSeconds(20))
                {
                }
                await Task.Delay(100);
            }
        }

        /// <summary>The value of a key, through etcd's JSON gateway (keys and values in base64).</summary>
        public async Task<string?> ValueAsync(string key)
        {
            var answer = await RangeAsync(new { key = Base64(key) });
            return answer.TryGetProperty("kvs", out var kvs) && kvs.GetArrayLength() == 1
                ? Encoding.UTF8.GetString(Convert.FromBase64String(kvs[0].GetProperty("value").GetString()!))
                : null;
        }

        public async Task<long> RangeCountAsync(string from, string to)
        {
            var answer = await RangeAsync(new { key = Base64(from), range_end = Base64(to), count_only = true });
            return answer.TryGetProperty("count", out var count) ? long.Parse(count.GetString()!, System.Globalization.CultureInfo.InvariantCulture) : 0;
        }

        private async Task<JsonElement> RangeAsync(object request)
        {
            using var response = await _http.PostAsJsonAsync(new Uri("/v3/kv/range", UriKind.Relative), request);
            response.EnsureSuccessStatusCode();
            return (await response.Content.ReadFromJsonAsync<JsonElement>()).Clone();
        }

        private static string Base64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

        public async ValueTask DisposeAsync()
        {
            _http.Dispose();
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
            _process.Dispose();
            Directory.Delete(_directory, recursive: true);
        }
    }
}
