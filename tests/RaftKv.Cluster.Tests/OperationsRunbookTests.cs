using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cluster.Tests;

/// <summary>
/// docs/operations.md is a runbook that works: every `sh` block between runbook markers runs, in order, as one bash
/// script (set -euo pipefail) against real server processes on loopback. `raftkv-server` and `raft-cli` are small
/// wrappers that exec the built programs, so `$!` is the server's own PID; every PID the script wrote is killed at the end.
/// </summary>
public sealed partial class OperationsRunbookTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task Every_procedure_in_docs_operations_md_runs_as_written()
    {
        var blocks = RunbookBlocks(await File.ReadAllTextAsync(Path.Combine(Paths.Repository, "docs", "operations.md")));
        blocks.Should().HaveCountGreaterThanOrEqualTo(7, "start, grow, replace, shrink, rolling restart, backup/restore, disaster recovery");
        var work = Path.Combine(Path.GetTempPath(), "raftkv-runbook-" + Guid.NewGuid().ToString("N")[..12]);
        var bin = Path.Combine(work, "bin");
        Directory.CreateDirectory(bin);
        Wrapper(bin, "raftkv-server", Paths.ServerDll);
        Wrapper(bin, "raft-cli", Paths.CliDll);
        var script = new StringBuilder("set -euo pipefail\nexport PATH=\"$RUNBOOK_BIN:$PATH\" NO_COLOR=1\n");
        foreach (var (block, number) in blocks.Select((b, i) => (b, i + 1)))
        {
            script.Append(CultureInfo.InvariantCulture, $"echo '### runbook block {number}'\n").Append(block).Append('\n');
        }
        await File.WriteAllTextAsync(Path.Combine(work, "runbook.sh"), script.ToString());

        var start = new ProcessStartInfo("bash", [Path.Combine(work, "runbook.sh")])
        {
            WorkingDirectory = work,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            Environment = { ["RUNBOOK_BIN"] = bin },
        };
        start.Environment.Remove("RAFTKV_ENDPOINTS");
        using var bash = Process.Start(start)!;
        var transcript = new StringBuilder();
        bash.OutputDataReceived += (_, line) => { lock (transcript) { transcript.AppendLine(line.Data); } };
        bash.ErrorDataReceived += (_, line) => { lock (transcript) { transcript.AppendLine(line.Data); } };
        bash.BeginOutputReadLine();
        bash.BeginErrorReadLine();
        try
        {
            using var timeout = new CancellationTokenSource(Limit);
            await bash.WaitForExitAsync(timeout.Token);
            string text;
            lock (transcript)
            {
                text = transcript.ToString();
            }
            output.WriteLine(text);
            bash.ExitCode.Should().Be(0, "the runbook stopped at a failing command; its transcript ends with:\n{0}\nlogs:\n{1}",
                string.Join('\n', text.Split('\n').TakeLast(30)), Logs(work));
        }
        finally
        {
            if (!bash.HasExited)
            {
                bash.Kill(entireProcessTree: true);
            }
            KillEveryPid(work);
            try
            {
                Directory.Delete(work, recursive: true);
            }
            catch (IOException)
            {
                // A log held by a process that is still dying; the temporary folder goes with the OS's cleanup.
            }
        }
    }

    private static List<string> RunbookBlocks(string markdown) =>
        [.. Runbook().Matches(markdown).Select(m => m.Groups["body"].Value)];

    private static void Wrapper(string bin, string name, string dll)
    {
        var path = Path.Combine(bin, name);
        File.WriteAllText(path, $"#!/bin/sh\nexec dotnet exec \"{dll}\" \"$@\"\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    /// <summary>Every process the runbook started (each wrote its PID to a *.pid file), killed by its PID.</summary>
    private static void KillEveryPid(string work)
    {
        foreach (var file in Directory.EnumerateFiles(work, "*.pid"))
        {
            if (int.TryParse(File.ReadAllText(file).Trim(), CultureInfo.InvariantCulture, out var pid))
            {
                try
                {
                    using var process = Process.GetProcessById(pid);
                    process.Kill(entireProcessTree: true);
                    process.WaitForExit(5_000);
                }
                catch (ArgumentException)
                {
                    // Already gone.
                }
                catch (InvalidOperationException)
                {
                    // Exited meanwhile.
                }
            }
        }
    }

    private static string Logs(string work) =>
        string.Join('\n', Directory.EnumerateFiles(work, "*.log").Order(StringComparer.Ordinal)
            .Select(log => $"--- {Path.GetFileName(log)}\n" + string.Join('\n', File.ReadAllLines(log).TakeLast(8))));

    [GeneratedRegex(@"<!-- runbook -->\s*```sh\n(?<body>.*?)```\s*<!-- /runbook -->", RegexOptions.Singleline)]
    private static partial Regex Runbook();
}
