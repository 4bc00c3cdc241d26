using RaftKv.RaftCore;
using RaftKv.Transport;

namespace RaftKv.Hosting;

/// <summary>
/// Which nodes of this cluster may open Raft calls to this node (streams, snapshots, forwards): the members of its
/// configuration in force; for <see cref="GrpcTransport.LeftPeerGrace"/>, members that just left it (a removed leader
/// commits its own removal and hands over to a successor); and a node that a member of that configuration vouches for.
/// The last is for a node lagging behind the change that added a peer: once that peer leads, the lagging node must hear
/// it or it could never catch up. So when an unknown node calls, this node asks its members (<c>IsMember</c>), at most
/// once a second per caller and for at most <see cref="MaxStrangers"/> callers, and hears the caller once one member
/// names it, with the same data directory, for <see cref="VouchLifetime"/>; the member's answer also says where the
/// caller listens, so that this node can answer it before its own configuration names it. Anyone else is refused.
/// </summary>
internal sealed class PeerAdmission(TimeProvider time)
{
    public static readonly TimeSpan VouchLifetime = TimeSpan.FromSeconds(30);

    public static readonly TimeSpan AskInterval = TimeSpan.FromSeconds(1);

    public const int MaxStrangers = 64;

    private readonly Lock _lock = new();
    private readonly Dictionary<NodeId, DateTimeOffset> _departed = [];
    private readonly Dictionary<NodeId, (ulong Incarnation, DateTimeOffset Until, string Address)> _vouched = [];
    private readonly Dictionary<NodeId, DateTimeOffset> _lastAsked = [];
    private readonly HashSet<NodeId> _asking = [];

    /// <summary>Why a caller is heard (or that it is not).</summary>
    public enum Standing
    {
        Member,
        JustLeft,
        Vouched,
        Unknown,
    }

    /// <summary>The configuration in force changed: members that left it are heard for a grace period.</summary>
    public void ConfigChanged(ClusterConfig previous, ClusterConfig current)
    {
        ArgumentNullException.ThrowIfNull(previous);
        ArgumentNullException.ThrowIfNull(current);
        var until = time.GetUtcNow() + GrpcTransport.LeftPeerGrace;
        lock (_lock)
        {
            foreach (var left in previous.Members.Where(m => !current.Contains(m)))
            {
                _departed[left] = until;
            }
            foreach (var member in current.Members)
            {
                _departed.Remove(member);
            }
        }
    }

    public Standing Check(NodeId from, ulong incarnation, ClusterConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Contains(from))
        {
            return Standing.Member;
        }
        var now = time.GetUtcNow();
        lock (_lock)
        {
            if (_departed.TryGetValue(from, out var until) && now < until)
            {
                return Standing.JustLeft;
            }
            if (_vouched.TryGetValue(from, out var vouched) && now < vouched.Until && vouched.Incarnation == incarnation)
            {
                return Standing.Vouched;
            }
        }
        return Standing.Unknown;
    }

    /// <summary>True if this node should ask its members about <paramref name="from"/> now (then it must call <see cref="Answered"/>).</summary>
    public bool StartAsking(NodeId from)
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            if (_asking.Contains(from) || (_lastAsked.TryGetValue(from, out var last) && now - last < AskInterval))
            {
                return false;
            }
            if (!_lastAsked.ContainsKey(from) && _lastAsked.Count >= MaxStrangers)
            {
                foreach (var stale in _lastAsked.Where(p => now - p.Value >= AskInterval && !_asking.Contains(p.Key)).Select(p => p.Key).ToList())
                {
                    _lastAsked.Remove(stale);
                }
                if (_lastAsked.Count >= MaxStrangers)
                {
                    return false;
                }
            }
            _lastAsked[from] = now;
            _asking.Add(from);
            foreach (var expired in _vouched.Where(p => now >= p.Value.Until).Select(p => p.Key).ToList())
            {
                _vouched.Remove(expired);
            }
            return true;
        }
    }

    /// <summary>The members answered about <paramref name="from"/>: <paramref name="address"/> (where a member's configuration says it listens) if one named it with this incarnation.</summary>
    public void Answered(NodeId from, ulong incarnation, string? address)
    {
        lock (_lock)
        {
            _asking.Remove(from);
            if (address is not null)
            {
                _vouched[from] = (incarnation, time.GetUtcNow() + VouchLifetime, address);
            }
        }
    }

    /// <summary>Where the nodes vouched for now listen (as a member's configuration names them).</summary>
    public IReadOnlyList<(NodeId Node, string Address)> VouchedAddresses()
    {
        var now = time.GetUtcNow();
        lock (_lock)
        {
            return [.. _vouched.Where(p => now < p.Value.Until).Select(p => (p.Key, p.Value.Address))];
        }
    }
}
