using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace RaftKv.Testing.Processes;

/// <summary>
/// One RaftKv server as a real process on loopback. The test that starts it stops it, by PID, even when it fails:
/// <see cref="DisposeAsync"/> kills it, and every process still running when the test host exits is killed too.
/// </summary>
public sealed partial class ServerProcess : IAsyncDisposable
{
    private static readonly List<Process> Started = [];
    private readonly Process _process;
    private readonly StreamWriter _log;

    static ServerProcess()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            lock (Started)
            {
                foreach (var process in Started)
                {
                    try
                    {
                        process.Kill(entireProcessTree: true);
                    }
                    catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
                    {
                        // Exited already.
                    }
                }
            }
        };
    }

    private ServerProcess(string nodeId, int httpPort, int peerPort, string dataDirectory, string logPath, IReadOnlyList<string> arguments,
        Placement placement, string serverDll)
    {
        _serverDll = serverDll;
        NodeId = nodeId;
        _placement = placement;
        HttpPort = httpPort;
        PeerPort = peerPort;
        DataDirectory = dataDirectory;
        LogPath = logPath;
        Arguments = arguments;
        _log = new StreamWriter(logPath, append: true) { AutoFlush = true };
        var command = placement.Launcher.Concat(["dotnet", "exec", serverDll, .. arguments]).ToList();
        var start = new ProcessStartInfo(command[0], command.Skip(1))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dataDirectory)!,
        };
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => Write(e.Data);
        _process.ErrorDataReceived += (_, e) => Write(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        lock (Started)
        {
            Started.Add(_process);
        }
        Client = new HttpClient(placement.Handler(), disposeHandler: true)
        {
            BaseAddress = new Uri($"{placement.Scheme}://{placement.Host}:{httpPort}"),
            Timeout = TimeSpan.FromSeconds(10),
        };
        if (placement.Token is { } token)
        {
            Client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        }
    }

    /// <summary>Where a process runs: loopback, or a node namespace of a <see cref="Faults.NetworkLab"/>.</summary>
    public sealed record Placement(string Host, IReadOnlyList<string> Launcher, Func<HttpMessageHandler> Handler, string Scheme = "http", string? Token = null)
    {
        public static Placement Loopback { get; } = new("127.0.0.1", [], () => new SocketsHttpHandler());
    }

    private readonly Placement _placement;
    private readonly string _serverDll;

    public string Host => _placement.Host;

    public string NodeId { get; }

    public int HttpPort { get; }

    public int PeerPort { get; }

    public string DataDirectory { get; }

    public string LogPath { get; }

    public IReadOnlyList<string> Arguments { get; }

    public HttpClient Client { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public Uri BaseAddress => Client.BaseAddress!;

    /// <summary>
    /// Starts a node with these arguments (node id, peers, ports and data directory are the caller's): the KV server, or
    /// another application on the node runtime (<paramref name="serverDll"/>).
    /// </summary>
    public static ServerProcess Start(string nodeId, int httpPort, int peerPort, string dataDirectory, IEnumerable<string> arguments, Placement? placement = null,
        string? serverDll = null)
    {
        Directory.CreateDirectory(dataDirectory);
        var log = Path.Combine(Path.GetDirectoryName(dataDirectory)!, nodeId + ".log");
        return new ServerProcess(nodeId, httpPort, peerPort, dataDirectory, log, [.. arguments], placement ?? Placement.Loopback, serverDll ?? Paths.ServerDll);
    }

    /// <summary>The same node again, on the same ports and data directory (after a kill), with <paramref name="extraArguments"/> added.</summary>
    public ServerProcess Restart(IEnumerable<string>? extraArguments = null)
    {
        if (!_process.HasExited)
        {
            throw new InvalidOperationException($"{NodeId} is still running");
        }
        _log.Dispose();
        return new ServerProcess(NodeId, HttpPort, PeerPort, DataDirectory, LogPath, [.. Arguments, .. extraArguments ?? []], _placement, _serverDll);
    }

    public async Task WaitUntilServingAsync(TimeSpan within)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < within)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{NodeId} exited with {_process.ExitCode}: {Tail()}");
            }
            try
            {
                using var response = await Client.GetAsync(new Uri("/health", UriKind.Relative)).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            await Task.Delay(50).ConfigureAwait(false);
        }
        throw new TimeoutException($"{NodeId} did not serve /health within {within}: {Tail()}");
    }

    public async Task<JsonElement> StatusAsync(CancellationToken cancellationToken = default)
    {
        using var response = await Client.GetAsync(new Uri("/status?digest=true", UriKind.Relative), cancellationToken).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        using var document = await JsonDocument.ParseAsync(await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false),
            cancellationToken: cancellationToken).ConfigureAwait(false);
        return document.RootElement.Clone();
    }

    /// <summary>SIGKILL: the process dies at once, as in a crash.</summary>
    public async Task KillAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }
        await _process.WaitForExitAsync().ConfigureAwait(false);
    }

    /// <summary>SIGTERM: a graceful stop. Returns the exit code.</summary>
    public async Task<int> TerminateAsync(TimeSpan within)
    {
        Signal(15);
        using var timeout = new CancellationTokenSource(within);
        await _process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        return _process.ExitCode;
    }

    /// <summary>Waits for the process to exit by itself; returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        await _process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        return _process.ExitCode;
    }

    /// <summary>SIGSTOP: the process freezes (a paused VM, a long GC) until <see cref="Resume"/>.</summary>
    public void Pause() => Signal(19);

    /// <summary>SIGCONT.</summary>
    public void Resume() => Signal(18);

    public string Tail(int lines = 30)
    {
        try
        {
            using var stream = new FileStream(LogPath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            using var reader = new StreamReader(stream);
            return string.Join('\n', reader.ReadToEnd().Split('\n').TakeLast(lines));
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                Resume(); // a paused process does not die of SIGKILL until it runs
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().ConfigureAwait(false);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        lock (Started)
        {
            Started.Remove(_process);
        }
        _process.Dispose();
        Client.Dispose();
        lock (_log)
        {
            _log.Dispose();
        }
    }

    private void Write(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (_log)
        {
            try
            {
                _log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // The test is over.
            }
        }
    }

    private void Signal(int signal)
    {
        if (!_process.HasExited && Kill(_process.Id, signal) != 0)
        {
            throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}

/// <summary>Where things are: the repository, and the server the tests start.</summary>
public static class Paths
{
    public static string Repository { get; } = FindRepository();

    /// <summary>The server built in the same configuration as the tests (Debug or Release).</summary>
    public static string ServerDll { get; } = Path.Combine(Repository, "src", "RaftKv.Server", "bin", Configuration, "net10.0", "RaftKv.Server.dll");

    public static string CliDll { get; } = Path.Combine(Repository, "src", "RaftKv.Cli", "bin", Configuration, "net10.0", "raft-cli.dll");

    /// <summary>An assembly built from <paramref name="projectDirectory"/> (relative to the repository) in the tests' configuration.</summary>
    public static string Built(string projectDirectory, string assembly) =>
        Path.Combine(Repository, projectDirectory, "bin", Configuration, "net10.0", assembly + ".dll");

    private static string Configuration => AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
        ? "Release"
        : "Debug";

    private static string FindRepository()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "RaftKv.sln")))
        {
            directory = directory.Parent;
        }
        return directory?.FullName ?? throw new InvalidOperationException("RaftKv.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>Free loopback ports, found by binding port 0.</summary>
public static class FreePorts
{
    public static int[] Take(int count)
    {
        var listeners = Enumerable.Range(0, count).Select(_ => new TcpListener(IPAddress.Loopback, 0)).ToList();
        foreach (var listener in listeners)
        {
            listener.Start();
        }
        var ports = listeners.Select(l => ((IPEndPoint)l.LocalEndpoint).Port).ToArray();
        foreach (var listener in listeners)
        {
            listener.Stop();
        }
        return ports;
    }

    public static string Describe(int port) => port.ToString(CultureInfo.InvariantCulture);
}
