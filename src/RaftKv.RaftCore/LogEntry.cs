using System.Globalization;

namespace RaftKv.RaftCore;

public enum EntryKind : byte
{
    /// <summary>A command for the state machine; an empty one is the leader's no-op (Raft §8).</summary>
    Normal = 0,

    /// <summary>A cluster configuration (<see cref="ClusterConfig"/>); it takes effect when appended (dissertation §4.1).</summary>
    Config = 1,
}

/// <summary>One entry of the replicated log.</summary>
public readonly record struct LogEntry(LogIndex Index, Term Term, EntryKind Kind, ReadOnlyMemory<byte> Data)
{
    /// <summary>Bytes counted against flow-control limits: the payload plus a fixed header allowance.</summary>
    public const int OverheadBytes = 24;

    public static LogEntry Noop(LogIndex index, Term term) => new(index, term, EntryKind.Normal, ReadOnlyMemory<byte>.Empty);

    public int SizeBytes => Data.Length + OverheadBytes;

    public bool IsNoop => Kind == EntryKind.Normal && Data.IsEmpty;

    public override string ToString()
    {
        var what = Kind switch
        {
            EntryKind.Config => "config " + ClusterConfig.Decode(Data.Span),
            _ when Data.IsEmpty => "noop",
            _ => Data.Length.ToString(CultureInfo.InvariantCulture) + "b",
        };
        return Index.Value.ToString(CultureInfo.InvariantCulture) + "/" + Term.Value.ToString(CultureInfo.InvariantCulture) + " " + what;
    }
}

/// <summary>What a node must persist before it answers anyone: its term, its vote in that term, and how far it knows the log is committed.</summary>
public readonly record struct HardState(Term Term, NodeId Vote, LogIndex Commit)
{
    public static readonly HardState Empty = new(Term.Zero, NodeId.None, LogIndex.Zero);

    public override string ToString() => $"term={Term.Value} vote={Vote} commit={Commit.Value}";
}

/// <summary>Describes a snapshot: the last entry it covers and the configuration in force there.</summary>
public sealed record SnapshotMetadata(LogIndex Index, Term Term, ClusterConfig Config)
{
    public override string ToString() => $"snapshot {Index.Value}/{Term.Value} {Config}";
}
