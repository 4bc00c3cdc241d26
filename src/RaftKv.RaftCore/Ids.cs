using System.Globalization;

namespace RaftKv.RaftCore;

/// <summary>A Raft term. Terms only grow (Raft §5.1).</summary>
public readonly record struct Term(ulong Value) : IComparable<Term>
{
    public static readonly Term Zero = new(0);

    public Term Next() => new(Value + 1);

    public int CompareTo(Term other) => Value.CompareTo(other.Value);

    public static bool operator <(Term left, Term right) => left.Value < right.Value;
    public static bool operator >(Term left, Term right) => left.Value > right.Value;
    public static bool operator <=(Term left, Term right) => left.Value <= right.Value;
    public static bool operator >=(Term left, Term right) => left.Value >= right.Value;

    public static Term Max(Term left, Term right) => left >= right ? left : right;

    public override string ToString() => "t" + Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A position in the replicated log; the first entry has index 1, index 0 is "before the log".</summary>
public readonly record struct LogIndex(ulong Value) : IComparable<LogIndex>
{
    public static readonly LogIndex Zero = new(0);

    public LogIndex Next() => new(Value + 1);

    public LogIndex Previous()
    {
        Invariant.Assert(Value > 0);
        return new(Value - 1);
    }

    public LogIndex Plus(int count) => new(checked(Value + (ulong)count));

    /// <summary>The number of indexes from <paramref name="from"/> up to and including this one.</summary>
    public int CountFrom(LogIndex from) => Value < from.Value ? 0 : checked((int)(Value - from.Value + 1));

    public int CompareTo(LogIndex other) => Value.CompareTo(other.Value);

    public static bool operator <(LogIndex left, LogIndex right) => left.Value < right.Value;
    public static bool operator >(LogIndex left, LogIndex right) => left.Value > right.Value;
    public static bool operator <=(LogIndex left, LogIndex right) => left.Value <= right.Value;
    public static bool operator >=(LogIndex left, LogIndex right) => left.Value >= right.Value;

    public static LogIndex Min(LogIndex left, LogIndex right) => left <= right ? left : right;
    public static LogIndex Max(LogIndex left, LogIndex right) => left >= right ? left : right;

    public override string ToString() => "i" + Value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A cluster member. Zero means "nobody" (no leader known, no vote cast).</summary>
public readonly record struct NodeId(ulong Value) : IComparable<NodeId>
{
    public static readonly NodeId None = new(0);

    public bool IsNone => Value == 0;

    public int CompareTo(NodeId other) => Value.CompareTo(other.Value);

    public override string ToString() => IsNone ? "none" : "n" + Value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Parses "n3" or "3".</summary>
    public static bool TryParse(string? text, out NodeId id)
    {
        id = None;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }
        var digits = text.StartsWith('n') ? text[1..] : text;
        if (ulong.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0)
        {
            id = new NodeId(value);
            return true;
        }
        return false;
    }
}
