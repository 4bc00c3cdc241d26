using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace RaftKv.Testing.Faults;

/// <summary>
/// A private network for a test: one network namespace per node, each with a veth pair to a bridge in a namespace of the
/// lab's own, addresses the lab assigns, and iptables DROP rules inside the node namespaces to cut links. The host's own
/// interfaces and firewall are never touched: the test's own sockets are created inside the bridge namespace
/// (<see cref="CreateHandler"/>). Everything is removed on <see cref="Dispose"/>, and namespaces left behind by a killed
/// run are removed when the next lab starts.
/// </summary>
public sealed partial class NetworkLab : IDisposable
{
    private const string Prefix = "rkvlab";
    private static readonly List<NetworkLab> Open = [];
    private readonly string _id;
    private readonly int _subnet;
    private readonly NamespaceSockets _sockets;
    private bool _disposed;

    static NetworkLab()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            lock (Open)
            {
                foreach (var lab in Open.ToList())
                {
                    lab.Dispose();
                }
            }
        };
    }

    private NetworkLab(int nodes)
    {
        _id = Environment.ProcessId.ToString("x", CultureInfo.InvariantCulture) + Random.Shared.Next(0x100, 0xfff).ToString("x", CultureInfo.InvariantCulture);
        _subnet = Random.Shared.Next(1, 250);
        Nodes = nodes;
        lock (Open)
        {
            Open.Add(this);
        }
        try
        {
            Ip($"netns add {Bridge}");
            Ip($"-n {Bridge} link set lo up");
            Ip($"-n {Bridge} link add br0 type bridge");
            Ip($"-n {Bridge} addr add {ClientAddress}/24 dev br0");
            Ip($"-n {Bridge} link set br0 up");
            for (var i = 0; i < nodes; i++)
            {
                var ns = Namespace(i);
                Ip($"netns add {ns}");
                Ip($"-n {ns} link set lo up");
                // The veth is made inside the bridge namespace with its peer inside the node's: never in the host's.
                Ip($"-n {Bridge} link add v{i} type veth peer name eth0 netns {ns}");
                Ip($"-n {Bridge} link set v{i} master br0");
                Ip($"-n {Bridge} link set v{i} up");
                Ip($"-n {ns} addr add {Address(i)}/24 dev eth0");
                Ip($"-n {ns} link set eth0 up");
            }
            _sockets = new NamespaceSockets(Bridge);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public int Nodes { get; }

    public string Bridge => $"{Prefix}{_id}b";

    /// <summary>The test's own address on the lab's bridge.</summary>
    public string ClientAddress => $"10.77.{_subnet}.254";

    public string Namespace(int node) => $"{Prefix}{_id}n{node}";

    public string Address(int node) => $"10.77.{_subnet}.{node + 1}";

    /// <summary>Whether labs can be built here: root, with ip(8) and iptables(8). If not, says why.</summary>
    public static bool IsAvailable(out string why)
    {
        if (!OperatingSystem.IsLinux())
        {
            why = "network namespaces need Linux";
            return false;
        }
        if (GetEuid() != 0)
        {
            why = "network namespaces and iptables need root (CI runs as root)";
            return false;
        }
        foreach (var tool in new[] { "ip", "iptables" })
        {
            if (!new[] { "/usr/sbin/", "/sbin/", "/usr/bin/" }.Any(dir => File.Exists(dir + tool)))
            {
                why = $"{tool} is not installed (Debian packages iproute2 and iptables; .ci/run installs them)";
                return false;
            }
        }
        why = "";
        return true;
    }

    public static NetworkLab Create(int nodes)
    {
        RemoveLeftovers();
        return new NetworkLab(nodes);
    }

    /// <summary>An HTTP handler whose connections start inside the lab (from <see cref="ClientAddress"/>).</summary>
    public SocketsHttpHandler CreateHandler() => new()
    {
        ConnectTimeout = TimeSpan.FromSeconds(2),
        PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = _sockets.Create();
            try
            {
                socket.NoDelay = true;
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken).ConfigureAwait(false);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    };

    /// <summary>The command prefix that runs a program inside a node's namespace.</summary>
    public IReadOnlyList<string> Launcher(int node) => ["ip", "netns", "exec", Namespace(node)];

    /// <summary>Drops every packet between nodes <paramref name="a"/> and <paramref name="b"/>, both ways.</summary>
    public void Cut(int a, int b)
    {
        Drop(a, Address(b));
        Drop(b, Address(a));
    }

    /// <summary>Cuts every link between the two groups; the test can still reach every node.</summary>
    public void Partition(IReadOnlyCollection<int> side)
    {
        ArgumentNullException.ThrowIfNull(side);
        for (var a = 0; a < Nodes; a++)
        {
            for (var b = a + 1; b < Nodes; b++)
            {
                if (side.Contains(a) != side.Contains(b))
                {
                    Cut(a, b);
                }
            }
        }
    }

    public void Heal()
    {
        for (var i = 0; i < Nodes; i++)
        {
            Run("ip", $"netns exec {Namespace(i)} iptables -F");
        }
    }

    /// <summary>Packets a node's DROP rules have counted (proof that a partition really dropped traffic).</summary>
    public long DroppedPackets(int node)
    {
        var output = Run("ip", $"netns exec {Namespace(node)} iptables -L -v -n -x");
        return output.Split('\n').Where(l => l.Contains("DROP", StringComparison.Ordinal))
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(parts => parts.Length > 0 && long.TryParse(parts[0], out _))
            .Sum(parts => long.Parse(parts[0], CultureInfo.InvariantCulture));
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _sockets?.Dispose();
        for (var i = 0; i < Nodes; i++)
        {
            TryRun("ip", $"netns del {Namespace(i)}");
        }
        TryRun("ip", $"netns del {Bridge}");
        lock (Open)
        {
            Open.Remove(this);
        }
    }

    private void Drop(int node, string from)
    {
        Run("ip", $"netns exec {Namespace(node)} iptables -A INPUT -s {from} -j DROP");
        Run("ip", $"netns exec {Namespace(node)} iptables -A OUTPUT -d {from} -j DROP");
    }

    /// <summary>Namespaces of labs whose test process is gone (killed before it could clean up).</summary>
    private static void RemoveLeftovers()
    {
        foreach (var line in TryRun("ip", "netns list").Split('\n'))
        {
            var match = LabName().Match(line.Split(' ')[0].Trim());
            if (match.Success && int.TryParse(match.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var pid) && !ProcessExists(pid))
            {
                // Servers the dead run started inside it are orphans now: stop them before the namespace goes.
                foreach (var orphan in TryRun("ip", $"netns pids {match.Value}").Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    if (int.TryParse(orphan.Trim(), CultureInfo.InvariantCulture, out var orphanPid))
                    {
                        TryRun("kill", $"-KILL {orphanPid}");
                    }
                }
                TryRun("ip", $"netns del {match.Value}");
            }
        }
    }

    [System.Text.RegularExpressions.GeneratedRegex("^rkvlab([0-9a-f]+)[0-9a-f]{3}(b|n[0-9]+)$")]
    private static partial System.Text.RegularExpressions.Regex LabName();

    private static bool ProcessExists(int pid) => Directory.Exists($"/proc/{pid}");

    private static void Ip(string arguments) => Run("ip", arguments);

    private static string Run(string program, string arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(program, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var output = process.StandardOutput.ReadToEnd();
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {arguments} failed ({process.ExitCode}): {error.Trim()}");
        }
        return output;
    }

    private static string TryRun(string program, string arguments)
    {
        try
        {
            return Run(program, arguments);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
            return "";
        }
    }

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();

    /// <summary>
    /// Creates sockets inside a network namespace: a socket belongs to the namespace of the thread that creates it, so one
    /// thread enters the namespace (setns) and makes sockets for everyone; connecting and I/O then run anywhere.
    /// </summary>
    private sealed partial class NamespaceSockets : IDisposable
    {
        private const int NewNetworkNamespace = 0x40000000; // CLONE_NEWNET
        private readonly BlockingCollection<TaskCompletionSource<Socket>> _requests = new();
        private readonly Thread _thread;
        private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public NamespaceSockets(string name)
        {
            _thread = new Thread(() => Run(name)) { IsBackground = true, Name = "netns " + name };
            _thread.Start();
            _entered.Task.GetAwaiter().GetResult();
        }

        public Socket Create()
        {
            var request = new TaskCompletionSource<Socket>(TaskCreationOptions.RunContinuationsAsynchronously);
            _requests.Add(request);
            return request.Task.GetAwaiter().GetResult();
        }

        public void Dispose() => _requests.CompleteAdding();

        private void Run(string name)
        {
            var fd = OpenFile($"/var/run/netns/{name}", 0);
            if (fd < 0 || SetNs(fd, NewNetworkNamespace) != 0)
            {
                _entered.SetException(new InvalidOperationException($"cannot enter network namespace {name} (errno {Marshal.GetLastPInvokeError()})"));
                return;
            }
            _ = CloseFile(fd);
            _entered.SetResult();
            foreach (var request in _requests.GetConsumingEnumerable())
            {
                try
                {
                    request.SetResult(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
                }
                catch (SocketException error)
                {
                    request.SetException(error);
                }
            }
        }

        [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        private static partial int OpenFile(string path, int flags);

        [LibraryImport("libc", EntryPoint = "close")]
        private static partial int CloseFile(int fd);

        [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
        private static partial int SetNs(int fd, int type);
    }
}
