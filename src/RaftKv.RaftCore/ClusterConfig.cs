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
/// It is stored in the log as <see cref="EntryKind.Config"/> entries and in snapshot metadata.
/// </summary>
public sealed class ClusterConfig : IEquatable<ClusterConfig>
{
    private const byte FormatVersion = 1;

    private ClusterConfig(ImmutableSortedSet<NodeId> voters, ImmutableSortedSet<NodeId> learners, ImmutableSortedSet<NodeId> outgoingVoters)
    {
        Invariant.Assert(!voters.IsEmpty, "a configuration needs at least one voter");
        Invariant.Assert(!voters.Contains(NodeId.None) && !learners.Contains(NodeId.None) && !outgoingVoters.Contains(NodeId.None));
        Invariant.Assert(!voters.Overlaps(learners), "a node is a voter or a learner, not both");
        Voters = voters;
        Learners = learners;
        OutgoingVoters = outgoingVoters;
        Members = voters.Union(learners).Union(outgoingVoters);
    }

    public ImmutableSortedSet<NodeId> Voters { get; }

    public ImmutableSortedSet<NodeId> Learners { get; }

    /// <summary>Non-empty only in a joint configuration.</summary>
    public ImmutableSortedSet<NodeId> OutgoingVoters { get; }

    /// <summary>Everyone who receives the log, in id order.</summary>
    public ImmutableSortedSet<NodeId> Members { get; }

    public bool IsJoint => !OutgoingVoters.IsEmpty;

    public static ClusterConfig Create(IEnumerable<NodeId> voters, IEnumerable<NodeId>? learners = null, IEnumerable<NodeId>? outgoingVoters = null) =>
        new([.. voters], [.. learners ?? []], [.. outgoingVoters ?? []]);

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
        var buffer = new byte[1 + (3 * 4) + ((Voters.Count + Learners.Count + OutgoingVoters.Count) * 8)];
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
        return buffer;
    }

    /// <summary>Decodes <see cref="Encode"/>'s bytes; throws <see cref="FormatException"/> on anything else.</summary>
    public static ClusterConfig Decode(ReadOnlySpan<byte> data)
    {
        if (data.Length < 1 || data[0] != FormatVersion)
        {
            throw new FormatException("cluster configuration: unknown format");
        }
        var offset = 1;
        var sets = new ImmutableSortedSet<NodeId>[3];
        for (var s = 0; s < 3; s++)
        {
            if (data.Length < offset + 4)
            {
                throw new FormatException("cluster configuration: truncated");
            }
            var count = BinaryPrimitives.ReadInt32LittleEndian(data[offset..]);
            offset += 4;
            if (count < 0 || data.Length < offset + (count * 8L))
            {
                throw new FormatException("cluster configuration: truncated");
            }
            var builder = ImmutableSortedSet.CreateBuilder<NodeId>();
            for (var i = 0; i < count; i++)
            {
                builder.Add(new NodeId(BinaryPrimitives.ReadUInt64LittleEndian(data[offset..])));
                offset += 8;
            }
            sets[s] = builder.ToImmutable();
        }
        if (sets[0].IsEmpty)
        {
            throw new FormatException("cluster configuration: no voters");
        }
        return new ClusterConfig(sets[0], sets[1], sets[2]);
    }

    public bool Equals(ClusterConfig? other) =>
        other is not null && Voters.SetEquals(other.Voters) && Learners.SetEquals(other.Learners) && OutgoingVoters.SetEquals(other.OutgoingVoters);

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
