using System.Buffers.Binary;
using System.Collections.Immutable;
using System.Text;

namespace RaftKv.RaftCore;

public enum VoteOutcome
{
    Pending,
    Won,
    Lost,
}

/// <summary>
/// The cluster configuration as data: voters, learners (receive the log, never vote or count), and for a
/// joint configuration (dissertation §4.3) the outgoing voters, whose majority must agree as well.
/// It is stored in the log as <see cref="EntryKind.Config"/> entries and in snapshot metadata. Each member may carry an
/// address, opaque to the core: the host writes where the member is reached, so that every node learns new members'
/// addresses from the log itself.
/// </summary>
public sealed class ClusterConfig : IEquatable<ClusterConfig>
{
    private const byte FormatVersion1 = 1;

    // Version 2 adds each member's address after the three sets.
    private const byte FormatVersion = 2;

    /// <summary>The largest address a member may carry, in UTF-8 bytes.</summary>
    public const int MaxAddressBytes = 1024;

    /// <summary>The configuration of a node that was never bootstrapped (it waits to be added): no members at all.</summary>
    public static readonly ClusterConfig Empty = new([], [], [], ImmutableSortedDictionary<NodeId, string>.Empty, allowEmpty: true);

    private ClusterConfig(
        ImmutableSortedSet<NodeId> voters,
        ImmutableSortedSet<NodeId> learners,
        ImmutableSortedSet<NodeId> outgoingVoters,
        ImmutableSortedDictionary<NodeId, string> addresses,
        bool allowEmpty = false)
    {
        Invariant.Assert(allowEmpty || !voters.IsEmpty, "a configuration needs at least one voter");
        Invariant.Assert(!voters.Contains(NodeId.None) && !learners.Contains(NodeId.None) && !outgoingVoters.Contains(NodeId.None));
        Invariant.Assert(!voters.Overlaps(learners), "a node is a voter or a learner, not both");
        Voters = voters;
        Learners = learners;
        OutgoingVoters = outgoingVoters;
        Members = voters.Union(learners).Union(outgoingVoters);
        Invariant.Assert(addresses.Keys.All(Members.Contains), "only members have addresses");
        Addresses = addresses;
    }

    public ImmutableSortedSet<NodeId> Voters { get; }

    public ImmutableSortedSet<NodeId> Learners { get; }

    /// <summary>Non-empty only in a joint configuration.</summary>
    public ImmutableSortedSet<NodeId> OutgoingVoters { get; }

    /// <summary>Everyone who receives the log, in id order.</summary>
    public ImmutableSortedSet<NodeId> Members { get; }

    /// <summary>Where each member is reached, as the host wrote it (members without one are absent).</summary>
    public ImmutableSortedDictionary<NodeId, string> Addresses { get; }

    public bool IsJoint => !OutgoingVoters.IsEmpty;

    public static ClusterConfig Create(
        IEnumerable<NodeId> voters,
        IEnumerable<NodeId>? learners = null,
        IEnumerable<NodeId>? outgoingVoters = null,
        IEnumerable<KeyValuePair<NodeId, string>>? addresses = null) =>
        new([.. voters], [.. learners ?? []], [.. outgoingVoters ?? []], ImmutableSortedDictionary.CreateRange(addresses ?? []));

    /// <summary>This configuration with <paramref name="learner"/> added as a learner at <paramref name="address"/> (no joint step: learners never count).</summary>
    public ClusterConfig WithLearner(NodeId learner, string address) =>
        new(Voters, Learners.Add(learner), OutgoingVoters, Addresses.SetItem(learner, address));

    /// <summary>Without the learner <paramref name="learner"/> (no joint step).</summary>
    public ClusterConfig WithoutLearner(NodeId learner) =>
        new(Voters, Learners.Remove(learner), OutgoingVoters, Addresses.Remove(learner));

    /// <summary>
    /// The joint configuration C(old,new) that moves from these voters to <paramref name="newVoters"/> (dissertation §4.3):
    /// decisions need a majority of both. Learners that become voters stop being learners.
    /// </summary>
    public ClusterConfig EnterJoint(IEnumerable<NodeId> newVoters)
    {
        Invariant.Assert(!IsJoint, "a joint configuration is entered from a simple one");
        var incoming = newVoters.ToImmutableSortedSet();
        return new(incoming, Learners.Except(incoming), Voters, Addresses);
    }

    /// <summary>The simple configuration C(new) that ends a joint one; members that left lose their addresses.</summary>
    public ClusterConfig LeaveJoint()
    {
        Invariant.Assert(IsJoint, "only a joint configuration is left");
        var members = Voters.Union(Learners);
        return new(Voters, Learners, [], Addresses.RemoveRange(Addresses.Keys.Where(id => !members.Contains(id))));
    }

    public bool IsVoter(NodeId id) => Voters.Contains(id) || OutgoingVoters.Contains(id);

    public bool Contains(NodeId id) => Members.Contains(id);

    /// <summary>The highest index that a quorum has matched: the commit point (Raft §5.3). Joint: the lower of both halves.</summary>
    public LogIndex CommittedIndex(Func<NodeId, LogIndex> matchIndex)
    {
        var incoming = MajorityIndex(Voters, matchIndex);
        return IsJoint ? LogIndex.Min(incoming, MajorityIndex(OutgoingVoters, matchIndex)) : incoming;
    }

    /// <summary>Tallies votes; <paramref name="vote"/> answers true (granted), false (refused) or null (no answer yet).</summary>
    public VoteOutcome Tally(Func<NodeId, bool?> vote)
    {
        var incoming = MajorityTally(Voters, vote);
        if (!IsJoint)
        {
            return incoming;
        }
        var outgoing = MajorityTally(OutgoingVoters, vote);
        if (incoming == VoteOutcome.Lost || outgoing == VoteOutcome.Lost)
        {
            return VoteOutcome.Lost;
        }
        return incoming == VoteOutcome.Won && outgoing == VoteOutcome.Won ? VoteOutcome.Won : VoteOutcome.Pending;
    }

    /// <summary>Whether the nodes for which <paramref name="active"/> is true form a quorum.</summary>
    public bool HasQuorum(Func<NodeId, bool> active) => Tally(id => active(id) ? true : null) == VoteOutcome.Won;

    public static int QuorumSize(int voterCount) => (voterCount / 2) + 1;

    private static LogIndex MajorityIndex(ImmutableSortedSet<NodeId> voters, Func<NodeId, LogIndex> matchIndex)
    {
        Span<ulong> matched = voters.Count <= 16 ? stackalloc ulong[voters.Count] : new ulong[voters.Count];
        var i = 0;
        foreach (var id in voters)
        {
            matched[i++] = matchIndex(id).Value;
        }
        matched.Sort();
        // Sorted ascending: the entry at position n - quorum is held by at least a quorum of voters.
        return new LogIndex(matched[voters.Count - QuorumSize(voters.Count)]);
    }

    private static VoteOutcome MajorityTally(ImmutableSortedSet<NodeId> voters, Func<NodeId, bool?> vote)
    {
        int granted = 0, refused = 0;
        foreach (var id in voters)
        {
            switch (vote(id))
            {
                case true: granted++; break;
                case false: refused++; break;
            }
        }
        var quorum = QuorumSize(voters.Count);
        if (granted >= quorum)
        {
            return VoteOutcome.Won;
        }
        return voters.Count - refused < quorum ? VoteOutcome.Lost : VoteOutcome.Pending;
    }

    public byte[] Encode()
    {
        var addressBytes = Addresses.Values.Sum(a => 8 + 4 + Encoding.UTF8.GetByteCount(a));
        var buffer = new byte[1 + (3 * 4) + ((Voters.Count + Learners.Count + OutgoingVoters.Count) * 8) + 4 + addressBytes];
        buffer[0] = FormatVersion;
        var offset = 1;
        foreach (var set in new[] { Voters, Learners, OutgoingVoters })
        {
            BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(offset), set.Count);
            offset += 4;
            foreach (var id in set)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(offset), id.Value);
                offset += 8;
            }
        }
        BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(offset), Addresses.Count);
        offset += 4;
        foreach (var (id, address) in Addresses)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(buffer.AsSpan(offset), id.Value);
            var length = Encoding.UTF8.GetBytes(address, buffer.AsSpan(offset + 12));
            BinaryPrimitives.WriteInt32LittleEndian(buffer.AsSpan(offset + 8), length);
            offset += 12 + length;
        }
        return buffer;
    }

    /// <summary>Decodes <see cref="Encode"/>'s bytes (and version 1, without addresses); throws <see cref="FormatException"/> on anything else.</summary>
    public static ClusterConfig Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < 1 || (data[0] != FormatVersion && data[0] != FormatVersion1))
        {
            throw new FormatException("cluster configuration: unknown format");
        }
        var offset = 1;
        var sets = new ImmutableSortedSet<NodeId>[3];
        for (var s = 0; s < 3; s++)
        {
            var count = ReadCount(data, ref offset, 8);
            var builder = ImmutableSortedSet.CreateBuilder<NodeId>();
            for (var i = 0; i < count; i++)
            {
                builder.Add(new NodeId(BinaryPrimitives.ReadUInt64LittleEndian(data[offset..])));
                offset += 8;
            }
            sets[s] = builder.ToImmutable();
        }
        var addresses = ImmutableSortedDictionary.CreateBuilder<NodeId, string>();
        if (data[0] == FormatVersion)
        {
            var count = ReadCount(data, ref offset, 12);
            for (var i = 0; i < count; i++)
            {
                if (data.Length < offset + 12)
                {
                    throw new FormatException("cluster configuration: truncated");
                }
                var id = new NodeId(BinaryPrimitives.ReadUInt64LittleEndian(data[offset..]));
                var length = BinaryPrimitives.ReadInt32LittleEndian(data[(offset + 8)..]);
                offset += 12;
                if (length < 0 || length > MaxAddressBytes || data.Length < offset + length)
                {
                    throw new FormatException("cluster configuration: bad address");
                }
                addresses[id] = Encoding.UTF8.GetString(data.Slice(offset, length));
                offset += length;
            }
        }
        if (offset != data.Length)
        {
            throw new FormatException("cluster configuration: trailing bytes");
        }
        if (sets[0].IsEmpty)
        {
            throw new FormatException("cluster configuration: no voters");
        }
        if (sets[0].Overlaps(sets[1]) || sets.Any(set => set.Contains(NodeId.None)))
        {
            throw new FormatException("cluster configuration: a node is listed twice, or as node 0");
        }
        var members = sets[0].Union(sets[1]).Union(sets[2]);
        if (!addresses.Keys.All(members.Contains))
        {
            throw new FormatException("cluster configuration: an address for a node that is not a member");
        }
        return new ClusterConfig(sets[0], sets[1], sets[2], addresses.ToImmutable());
    }

    private static int ReadCount(ReadOnlySpan<byte> data, ref int offset, int minBytesEach)
    {
        if (data.Length < offset + 4)
        {
            throw new FormatException("cluster configuration: truncated");
        }
        var count = BinaryPrimitives.ReadInt32LittleEndian(data[offset..]);
        offset += 4;
        if (count < 0 || data.Length < offset + (count * (long)minBytesEach))
        {
            throw new FormatException("cluster configuration: truncated");
        }
        return count;
    }

    public bool Equals(ClusterConfig? other) =>
        other is not null && Voters.SetEquals(other.Voters) && Learners.SetEquals(other.Learners) && OutgoingVoters.SetEquals(other.OutgoingVoters)
        && Addresses.Count == other.Addresses.Count && Addresses.All(a => other.Addresses.TryGetValue(a.Key, out var b) && a.Value == b);

    public override bool Equals(object? obj) => Equals(obj as ClusterConfig);

    public override int GetHashCode()
    {
        var hash = new HashCode();
        foreach (var id in Members)
        {
            hash.Add(id);
        }
        return hash.ToHashCode();
    }

    public override string ToString()
    {
        if (Members.IsEmpty)
        {
            return "no members";
        }
        var text = new StringBuilder("voters=(").AppendJoin(' ', Voters).Append(')');
        if (!Learners.IsEmpty)
        {
            text.Append(" learners=(").AppendJoin(' ', Learners).Append(')');
        }
        if (IsJoint)
        {
            text.Append(" outgoing=(").AppendJoin(' ', OutgoingVoters).Append(')');
        }
        return text.ToString();
    }
}

public enum ConfChangeKind
{
    /// <summary>Adds a node that receives the log but never votes or counts toward a quorum.</summary>
    AddLearner,

    /// <summary>Makes a caught-up learner a voter, through a joint configuration.</summary>
    Promote,

    /// <summary>Removes a learner at once, or a voter through a joint configuration (the leader too: it steps down after).</summary>
    Remove,
}

/// <summary>One membership change an operator asks for. <see cref="Address"/> is the new learner's (opaque to the core).</summary>
public sealed record ConfChange(ConfChangeKind Kind, NodeId Node, string Address = "")
{
    public override string ToString() => Kind switch
    {
        ConfChangeKind.AddLearner => $"add learner {Node}",
        ConfChangeKind.Promote => $"promote {Node}",
        _ => $"remove {Node}",
    };
}
