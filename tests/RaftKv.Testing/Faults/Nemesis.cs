using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using RaftKv.Testing.Processes;

namespace RaftKv.Testing.Faults;

/// <summary>The faults the nemesis injects into a cluster of server processes.</summary>
public enum Fault
{
    /// <summary>SIGKILL a follower; restart it from its data directory after the hold.</summary>
    KillFollower,

    /// <summary>SIGKILL the leader; restart it after the hold.</summary>
    KillLeader,

    /// <summary>SIGKILL a minority (⌊n/2⌋ nodes, the leader among them); restart them after the hold.</summary>
    KillMinority,

    /// <summary>SIGSTOP the leader (a long GC, a paused VM); SIGCONT after the hold.</summary>
    PauseLeader,

    /// <summary>Cut one node from every other node (the clients still reach it).</summary>
    IsolateOne,

    /// <summary>Split the nodes into a minority holding the leader and a majority.</summary>
    SplitMajorityMinority,

    /// <summary>Cut the leader from its followers while clients still reach it: it must step down.</summary>
    CutLeaderFromFollowers,

    /// <summary>A new machine joins (--join, a spare slot) and is added as a learner, then promoted once caught up.</summary>
    AddVoter,

    /// <summary>A voter is removed (half the time the leader itself) and its process stopped for good.</summary>
    RemoveVoter,

    /// <summary>A follower's machine dies for good (SIGKILL); it is removed and a new machine joins under a new id in its place.</summary>
    ReplaceNode,
}

/// <summary>What one fault did, for the test's assertions and the report.</summary>
public sealed record FaultReport(Fault Fault, TimeSpan At, string Description, string? LeaderBefore, string? LeaderDuring)
{
    /// <summary>Packets the DROP rules counted on the nodes cut off (partitions only).</summary>
    public long DroppedPackets { get; init; }

    /// <summary>For <see cref="Fault.CutLeaderFromFollowers"/>: how long the cut-off leader took to step down (null: it did not).</summary>
    public TimeSpan? StepDown { get; init; }

    public override string ToString()
    {
        var text = string.Create(CultureInfo.InvariantCulture,
            $"{At.TotalSeconds,6:F1}s {Fault}: {Description}; leader {LeaderBefore ?? "none"} → {LeaderDuring ?? "none"}");
        if (DroppedPackets > 0)
        {
            text += string.Create(CultureInfo.InvariantCulture, $"; {DroppedPackets} packets dropped");
        }
        if (StepDown is { } stepDown)
        {
            text += string.Create(CultureInfo.InvariantCulture, $"; cut-off leader stepped down after {stepDown.TotalMilliseconds:F0} ms");
        }
        return text;
    }
}

/// <summary>
/// Injects faults into a running <see cref="LocalCluster"/>: kills and restarts, pauses and resumes, and (when the cluster
/// runs in a <see cref="NetworkLab"/>) partitions with real packet filtering. Every fault is undone before the next.
/// </summary>
public sealed class Nemesis
{
    private static readonly TimeSpan StatusTimeout = TimeSpan.FromSeconds(1);
    private readonly LocalCluster _cluster;
    private readonly Random _random;
    private readonly Action<string> _log;
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    public Nemesis(LocalCluster cluster, int seed, Action<string> log)
    {
        _cluster = cluster;
        _random = new Random(seed);
        _log = log;
    }

    private readonly HashSet<ServerProcess> _killed = [];

    public List<FaultReport> Reports { get; } = [];

    /// <summary>Nodes that exited without the nemesis killing them (a crash, a broken invariant), with why.</summary>
    public List<string> UnexpectedExits { get; } = [];

    public static bool NeedsNetwork(Fault fault) => fault is Fault.IsolateOne or Fault.SplitMajorityMinority or Fault.CutLeaderFromFollowers;

    public static bool ChangesMembership(Fault fault) => fault is Fault.AddVoter or Fault.RemoveVoter or Fault.ReplaceNode;

    /// <summary>The fewest voters a membership fault leaves: a quorum must survive a kill or a partition.</summary>
    public const int MinimumVoters = 3;

    /// <summary>Injects <paramref name="fault"/>, holds it, and undoes it (restarts, resumes, heals).</summary>
    public async Task<FaultReport> InjectAsync(Fault fault, TimeSpan hold, CancellationToken cancellationToken = default)
    {
        if (NeedsNetwork(fault) && _cluster.Lab is null)
        {
            throw new InvalidOperationException($"{fault} needs the cluster to run in a network lab");
        }
        await RestartUnexpectedExitsAsync().ConfigureAwait(false);
        var at = _clock.Elapsed;
        var leader = await FindLeaderAsync(TimeSpan.FromSeconds(15), cancellationToken).ConfigureAwait(false);
        var nodes = _cluster.Nodes.ToList();
        FaultReport report;
        switch (fault)
        {
            case Fault.KillFollower:
            case Fault.KillLeader:
            case Fault.KillMinority:
            {
                List<ServerProcess> victims = fault switch
                {
                    Fault.KillFollower => [Pick(nodes.Where(n => n != leader))],
                    Fault.KillLeader => [leader ?? Pick(nodes)],
                    _ => Minority(nodes, leader),
                };
                foreach (var victim in victims)
                {
                    _killed.Add(victim);
                    await victim.KillAsync().ConfigureAwait(false);
                }
                await Task.Delay(hold, cancellationToken).ConfigureAwait(false);
                var during = await FindLeaderAsync(TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
                foreach (var victim in victims)
                {
                    await _cluster.RestartAsync(victim).ConfigureAwait(false);
                    _killed.Remove(victim);
                }
                report = new FaultReport(fault, at, $"SIGKILL {Names(victims)}, restarted after {hold.TotalSeconds:F1}s", leader?.NodeId, during?.NodeId);
                break;
            }
            case Fault.PauseLeader:
            {
                var victim = leader ?? Pick(nodes);
                victim.Pause();
                ServerProcess? during;
                try
                {
                    await Task.Delay(hold, cancellationToken).ConfigureAwait(false);
                    // Asked while the old leader is still frozen: it cannot answer, so whoever answers as leader is new.
                    during = await FindLeaderAsync(TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    victim.Resume();
                }
                report = new FaultReport(fault, at, $"SIGSTOP {victim.NodeId}, SIGCONT after {hold.TotalSeconds:F1}s", leader?.NodeId, during?.NodeId);
                break;
            }
            case Fault.IsolateOne:
            {
                var victim = Pick(nodes);
                report = await PartitionAsync(fault, at, [victim], leader, hold, cancellationToken).ConfigureAwait(false);
                break;
            }
            case Fault.SplitMajorityMinority:
            {
                report = await PartitionAsync(fault, at, Minority(nodes, leader), leader, hold, cancellationToken).ConfigureAwait(false);
                break;
            }
            case Fault.CutLeaderFromFollowers:
            {
                // The leader must be leading when it is cut off (not a deposed one that has not heard yet): ask it.
                var victim = leader;
                for (var attempt = 0; attempt < 5 && (victim is null || await RoleAsync(victim, cancellationToken).ConfigureAwait(false) != "Leader"); attempt++)
                {
                    await Task.Delay(500, cancellationToken).ConfigureAwait(false);
                    victim = await FindLeaderAsync(TimeSpan.FromSeconds(10), cancellationToken).ConfigureAwait(false);
                }
                if (victim is null)
                {
                    throw new InvalidOperationException("no leader to cut off");
                }
                report = await PartitionAsync(fault, at, [victim], victim, hold, cancellationToken, watchStepDown: true).ConfigureAwait(false);
                break;
            }
            case Fault.AddVoter:
                report = await AddVoterAsync(fault, at, leader, nodes, cancellationToken).ConfigureAwait(false);
                break;
            case Fault.RemoveVoter:
            {
                var victim = leader is not null && _random.Next(2) == 0 ? leader : Pick(nodes.Where(n => n != leader));
                await RemoveAsync(victim, nodes.First(n => n != victim)).ConfigureAwait(false);
                await _cluster.ForgetAsync(victim).ConfigureAwait(false);
                var after = await FindLeaderAsync(TimeSpan.FromSeconds(15), cancellationToken).ConfigureAwait(false);
                report = new FaultReport(fault, at, $"removed {victim.NodeId}{(victim == leader ? " (the leader)" : "")} and stopped it", leader?.NodeId, after?.NodeId);
                break;
            }
            case Fault.ReplaceNode:
            {
                var victim = Pick(nodes.Where(n => n != leader));
                await victim.KillAsync().ConfigureAwait(false);
                await _cluster.ForgetAsync(victim).ConfigureAwait(false);
                await RemoveAsync(victim, nodes.First(n => n != victim)).ConfigureAwait(false);
                var added = await AddVoterAsync(fault, at, leader, [.. nodes.Where(n => n != victim)], cancellationToken).ConfigureAwait(false);
                report = added with { Description = $"SIGKILL {victim.NodeId} for good, removed it; {added.Description}" };
                break;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(fault), fault, null);
        }
        Reports.Add(report);
        _log(report.ToString());
        return report;
    }

    /// <summary>A fault chosen at random among those this cluster supports now (membership faults need spare slots, or voters to spare).</summary>
    public Fault PickFault()
    {
        var faults = Enum.GetValues<Fault>().Where(Possible).ToArray();
        return faults[_random.Next(faults.Length)];
    }

    private bool Possible(Fault fault) => fault switch
    {
        _ when NeedsNetwork(fault) => _cluster.Lab is not null,
        Fault.AddVoter or Fault.ReplaceNode => _cluster.SparesLeft > 0,
        Fault.RemoveVoter => _cluster.SpareEndpoints.Count > 0 && _cluster.Nodes.Count > MinimumVoters,
        _ => true,
    };

    /// <summary>Starts the next spare, adds it as a voter (a learner first, promoted once caught up), and reports it.</summary>
    private async Task<FaultReport> AddVoterAsync(Fault fault, TimeSpan at, ServerProcess? leader, IReadOnlyList<ServerProcess> members, CancellationToken cancellationToken)
    {
        var via = Pick(members.Where(n => !n.HasExited));
        var joiner = await _cluster.StartSpareAsync(via).ConfigureAwait(false);
        var body = new { id = joiner.NodeId, peerUrl = $"http://{joiner.Host}:{joiner.PeerPort}", clientUrl = joiner.BaseAddress.ToString(), learner = false };
        var (status, answer) = await LocalCluster.ClusterRequestAsync(Pick(members.Where(n => !n.HasExited)), HttpMethod.Post, "/cluster/members", body)
            .ConfigureAwait(false);
        if (status != System.Net.HttpStatusCode.Created && !await IsVoterAsync(joiner.NodeId, members).ConfigureAwait(false))
        {
            throw new InvalidOperationException($"adding {joiner.NodeId} failed: {(int)status} {answer}");
        }
        var after = await FindLeaderAsync(TimeSpan.FromSeconds(15), cancellationToken).ConfigureAwait(false);
        return new FaultReport(fault, at, $"{joiner.NodeId} joined through {via.NodeId}, was added as a learner and promoted", leader?.NodeId, after?.NodeId);
    }

    /// <summary>Removes <paramref name="victim"/> through <paramref name="via"/> (retrying while the cluster says "not now").</summary>
    private static async Task RemoveAsync(ServerProcess victim, ServerProcess via)
    {
        var (status, answer) = await LocalCluster.ClusterRequestAsync(via, HttpMethod.Delete, $"/cluster/members/{victim.NodeId}").ConfigureAwait(false);
        if (status != System.Net.HttpStatusCode.OK && await IsMemberAsync(victim.NodeId, via).ConfigureAwait(false))
        {
            throw new InvalidOperationException($"removing {victim.NodeId} failed: {(int)status} {answer}");
        }
    }

    /// <summary>An outcome the API could not tell (504): whether the change happened after all, asked of the members.</summary>
    private static async Task<bool> IsVoterAsync(string id, IReadOnlyList<ServerProcess> members)
    {
        foreach (var node in members.Where(n => !n.HasExited))
        {
            try
            {
                var list = await node.Client.GetFromJsonAsync<System.Text.Json.JsonElement>(new Uri("/cluster/members", UriKind.Relative)).ConfigureAwait(false);
                return list.GetProperty("members").EnumerateArray().Any(m => m.GetProperty("id").GetString() == id && m.GetProperty("role").GetString() == "voter");
            }
            catch (HttpRequestException)
            {
                // Ask the next one.
            }
        }
        return false;
    }

    private static async Task<bool> IsMemberAsync(string id, ServerProcess via)
    {
        var list = await via.Client.GetFromJsonAsync<System.Text.Json.JsonElement>(new Uri("/cluster/members", UriKind.Relative)).ConfigureAwait(false);
        return list.GetProperty("members").EnumerateArray().Any(m => m.GetProperty("id").GetString() == id);
    }

    /// <summary>
    /// Undoes whatever may be left: heals the network, resumes paused nodes, restarts the ones it killed. A node that
    /// exited by itself is recorded in <see cref="UnexpectedExits"/> (then restarted, so the run can still converge).
    /// </summary>
    public async Task HealAllAsync()
    {
        _cluster.Lab?.Heal();
        foreach (var node in _cluster.Nodes.ToList())
        {
            if (!node.HasExited)
            {
                node.Resume();
            }
        }
        foreach (var node in _killed.ToList())
        {
            await _cluster.RestartAsync(node).ConfigureAwait(false);
            _killed.Remove(node);
        }
        await RestartUnexpectedExitsAsync().ConfigureAwait(false);
    }

    private async Task RestartUnexpectedExitsAsync()
    {
        foreach (var node in _cluster.Nodes.Where(n => n.HasExited && !_killed.Contains(n)).ToList())
        {
            var why = $"{node.NodeId} exited by itself with code {node.ExitCode}: {node.Tail(10)}";
            UnexpectedExits.Add(why);
            _log("PROBLEM: " + why);
            await _cluster.RestartAsync(node).ConfigureAwait(false);
        }
    }

    private async Task<FaultReport> PartitionAsync(Fault fault, TimeSpan at, IReadOnlyList<ServerProcess> side, ServerProcess? leader,
        TimeSpan hold, CancellationToken cancellationToken, bool watchStepDown = false)
    {
        var lab = _cluster.Lab!;
        var indices = side.Select(LocalCluster.SlotOf).ToList();
        var before = indices.Sum(lab.DroppedPackets);
        lab.Partition(indices);
        TimeSpan? stepDown = null;
        ServerProcess? during;
        long dropped;
        try
        {
            var clock = Stopwatch.StartNew();
            if (watchStepDown)
            {
                // The cut-off leader hears from no quorum: CheckQuorum must make it step down. It must happen within
                // the hold or a few election timeouts after, and the test can still ask it (it is cut from peers only).
                var limit = hold + TimeSpan.FromSeconds(10);
                while (clock.Elapsed < limit && stepDown is null)
                {
                    if (await RoleAsync(leader!, cancellationToken).ConfigureAwait(false) is { } role && role != "Leader")
                    {
                        stepDown = clock.Elapsed;
                    }
                    else
                    {
                        await Task.Delay(50, cancellationToken).ConfigureAwait(false);
                    }
                }
            }
            var rest = hold - clock.Elapsed;
            if (rest > TimeSpan.Zero)
            {
                await Task.Delay(rest, cancellationToken).ConfigureAwait(false);
            }
            // Every node is asked (the test reaches all of them): a cut-off leader that still claims to lead has an
            // older term than the one the majority elected, and the highest term wins.
            during = await FindLeaderAsync(TimeSpan.Zero, cancellationToken).ConfigureAwait(false);
            dropped = indices.Sum(lab.DroppedPackets) - before; // before healing: healing flushes the rules and their counters
        }
        finally
        {
            lab.Heal();
        }
        return new FaultReport(fault, at, $"cut {Names(side)} from the rest for {hold.TotalSeconds:F1}s", leader?.NodeId, during?.NodeId)
        {
            DroppedPackets = dropped,
            StepDown = stepDown,
        };
    }

    /// <summary>The node that says it leads with the highest term, among running nodes that answer; waits up to <paramref name="within"/>.</summary>
    private async Task<ServerProcess?> FindLeaderAsync(TimeSpan within, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            ServerProcess? best = null;
            ulong bestTerm = 0;
            foreach (var node in _cluster.Nodes.Where(n => !n.HasExited))
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timeout.CancelAfter(StatusTimeout);
                try
                {
                    var status = await node.StatusAsync(timeout.Token).ConfigureAwait(false);
                    var term = status.GetProperty("term").GetUInt64();
                    if (status.GetProperty("role").GetString() == "Leader" && term >= bestTerm)
                    {
                        (best, bestTerm) = (node, term);
                    }
                }
                catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
                {
                    // Down, paused or cut off: not a leader we can use.
                }
            }
            if (best is not null || clock.Elapsed >= within)
            {
                return best;
            }
            await Task.Delay(100, cancellationToken).ConfigureAwait(false);
        }
    }

    private static async Task<string?> RoleAsync(ServerProcess node, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(StatusTimeout);
        try
        {
            return (await node.StatusAsync(timeout.Token).ConfigureAwait(false)).GetProperty("role").GetString();
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    /// <summary>⌊n/2⌋ distinct nodes: the leader (or a random node when none is known) and others at random.</summary>
    private List<ServerProcess> Minority(List<ServerProcess> nodes, ServerProcess? leader)
    {
        var first = leader ?? Pick(nodes);
        return [first, .. Shuffle(nodes.Where(n => n != first)).Take((nodes.Count / 2) - 1)];
    }

    private ServerProcess Pick(IEnumerable<ServerProcess> nodes)
    {
        var list = nodes.ToList();
        return list[_random.Next(list.Count)];
    }

    private IEnumerable<ServerProcess> Shuffle(IEnumerable<ServerProcess> nodes) => nodes.OrderBy(_ => _random.Next());

    private static string Names(IEnumerable<ServerProcess> nodes) => string.Join(", ", nodes.Select(n => n.NodeId));
}
