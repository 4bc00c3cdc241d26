using RaftKv.RaftCore;

namespace RaftKv.Testing.Simulation;

/// <summary>
/// CheckQuorum (dissertation §6.2) checked from outside: a leader that has heard from no quorum of its configuration for
/// <see cref="WindowMs"/> no longer leads. No safety property sees a deposed leader that leads on behind a partition (it
/// can commit nothing and confirm no read), but the follower lease (a node that heard from its leader ignores votes) and
/// any read served from a lease stand on this rule.
/// The core checks every election timeout that each voter of a quorum answered since the last check, so it steps down at
/// most two election timeouts after it last heard from a quorum; the window adds two ticks for the tick that notices. The
/// checker asks no more of the core than that: every message delivered from a peer counts as hearing from it (the core
/// counts only answers of its own term), and a leader is judged only once it has led, in one configuration, for a window.
/// </summary>
public sealed class CheckQuorumChecker(long windowMs)
{
    private readonly Dictionary<NodeId, Dictionary<NodeId, long>> _heardAt = [];
    private readonly Dictionary<NodeId, Leading> _leading = [];

    /// <summary>Two election timeouts and two ticks, in milliseconds.</summary>
    public long WindowMs { get; } = windowMs;

    /// <summary>The window for a node that ticks every <paramref name="tickMs"/> with this election timeout.</summary>
    public static CheckQuorumChecker For(int electionTimeoutTicks, int tickMs) => new(((2L * electionTimeoutTicks) + 2) * tickMs);

    /// <summary>A node (re)started: it has heard from nobody and leads nothing.</summary>
    public void Started(NodeId node)
    {
        _heardAt.Remove(node);
        _leading.Remove(node);
    }

    /// <summary>A message from <paramref name="from"/> reached <paramref name="node"/> at <paramref name="nowMs"/>.</summary>
    public void Delivered(NodeId node, NodeId from, long nowMs)
    {
        if (!_heardAt.TryGetValue(node, out var heard))
        {
            heard = [];
            _heardAt[node] = heard;
        }
        heard[from] = nowMs;
    }

    /// <summary>After a step of a node whose loop runs (a node whose storage failed stops its loop and steps down).</summary>
    public void AfterStep(NodeId node, RaftNode raft, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(raft);
        if (raft.Role != Role.Leader)
        {
            _leading.Remove(node);
            return;
        }
        if (!_leading.TryGetValue(node, out var leading) || leading.Term != raft.Term)
        {
            _leading[node] = new Leading(raft.Term, raft.Config, nowMs);
            return;
        }
        if (!leading.Config.Equals(raft.Config))
        {
            _leading[node] = new Leading(raft.Term, raft.Config, nowMs);
            return;
        }
        var since = nowMs - WindowMs;
        if (leading.SinceMs > since)
        {
            return;
        }
        var heard = _heardAt.GetValueOrDefault(node);
        bool Heard(NodeId id) => heard is not null && heard.TryGetValue(id, out var at) && at > since;
        if (!raft.Config.HasQuorum(id => id == node || Heard(id)))
        {
            var from = string.Join(' ', raft.Config.Members.Where(Heard).Order());
            throw new SafetyViolationException(
                $"check quorum: {node} still leads term {raft.Term.Value} though in the last {WindowMs} ms it heard from no quorum of {raft.Config} (heard from: {(from.Length == 0 ? "nobody" : from)})");
        }
    }

    /// <summary>A node leading <see cref="Term"/> in <see cref="Config"/> since <see cref="SinceMs"/>.</summary>
    private sealed record Leading(Term Term, ClusterConfig Config, long SinceMs);
}
