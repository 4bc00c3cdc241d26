using System.Text;

namespace RaftKv.Testing.Linearizability;

/// <summary>The verdict on a history; on a violation, the smallest failing key and the operations around the failure.</summary>
public sealed record CheckResult(bool Linearizable, int Keys, int Operations, string? FailingKey, string Report)
{
    public override string ToString() => Report;
}

/// <summary>
/// Checks that a key-value history is linearizable: that there is one order of all operations, consistent with real time
/// (an operation that returned before another was called comes first), in which every read sees the latest write. The
/// search is Wing &amp; Gong's with Lowe's memoization of visited (linearized set, state) pairs, as in Knossos and
/// Porcupine, run per key: keys are independent registers, so a history is linearizable exactly when each key's is.
/// </summary>
public static class LinearizabilityChecker
{
    /// <summary>Gives up on a key after this many search steps (a bound on test time, reported if hit).</summary>
    public const long MaxSteps = 50_000_000;

    public static CheckResult Check(IEnumerable<Operation> history)
    {
        ArgumentNullException.ThrowIfNull(history);
        var byKey = history.GroupBy(o => o.Key, StringComparer.Ordinal).ToList();
        var total = byKey.Sum(g => g.Count());
        var failures = new List<(string Key, int Count, string Detail)>();
        foreach (var group in byKey)
        {
            var operations = group.OrderBy(o => o.Call).ToList();
            var (ok, detail) = CheckKey(operations);
            if (!ok)
            {
                failures.Add((group.Key, operations.Count, detail));
            }
        }
        if (failures.Count == 0)
        {
            return new CheckResult(true, byKey.Count, total, null, $"linearizable: {total} operations on {byKey.Count} keys");
        }
        var smallest = failures.OrderBy(f => f.Count).ThenBy(f => f.Key, StringComparer.Ordinal).First();
        var report = new StringBuilder()
            .AppendLine($"NOT linearizable: {failures.Count} of {byKey.Count} keys fail; the smallest is '{smallest.Key}' ({smallest.Count} operations)")
            .Append(smallest.Detail)
            .ToString();
        return new CheckResult(false, byKey.Count, total, smallest.Key, report);
    }

    /// <summary>The search for one key: a register that is absent (null) or holds a value.</summary>
    private static (bool Linearizable, string Detail) CheckKey(List<Operation> operations)
    {
        var count = operations.Count;
        // The events of the history in time order: calls and returns, as a doubly linked list the search lifts
        // operations out of as it linearizes them. A call sorts before a return at the same instant (permissive).
        var entries = new List<Entry>(2 * count);
        for (var i = 0; i < count; i++)
        {
            var call = new Entry(i, isCall: true, operations[i].Call);
            var ret = new Entry(i, isCall: false, operations[i].Return);
            call.Match = ret;
            entries.Add(call);
            entries.Add(ret);
        }
        entries.Sort((a, b) => a.Time != b.Time ? a.Time.CompareTo(b.Time) : (a.IsCall == b.IsCall ? 0 : a.IsCall ? -1 : 1));
        var head = new Entry(-1, isCall: false, long.MinValue);
        var previous = head;
        foreach (var entry in entries)
        {
            previous.Next = entry;
            entry.Previous = previous;
            previous = entry;
        }

        var linearized = new Bits(count);
        var seen = new HashSet<(Bits, string?)>();
        var stack = new Stack<(Entry Call, string? State)>();
        string? state = null;
        var cursor = head.Next;
        var deepest = 0;
        Entry? stuckAt = null;
        long steps = 0;
        while (head.Next is not null)
        {
            if (++steps > MaxSteps)
            {
                return (false, $"search gave up after {MaxSteps:N0} steps: the history is too concurrent to decide\n");
            }
            if (cursor!.IsCall)
            {
                var operation = operations[cursor.Operation];
                if (Step(state, operation, out var next))
                {
                    var candidate = linearized.With(cursor.Operation);
                    if (seen.Add((candidate, next)))
                    {
                        stack.Push((cursor, state));
                        state = next;
                        linearized = candidate;
                        Lift(cursor);
                        if (stack.Count > deepest)
                        {
                            deepest = stack.Count;
                            stuckAt = null;
                        }
                        cursor = head.Next;
                        continue;
                    }
                }
                cursor = cursor.Next;
            }
            else
            {
                // A return whose call could not be placed: undo the last choice and try the next one.
                if (stack.Count == deepest && stuckAt is null)
                {
                    stuckAt = cursor;
                }
                if (stack.Count == 0)
                {
                    return (false, Describe(operations, stuckAt ?? cursor, deepest));
                }
                var (call, before) = stack.Pop();
                state = before;
                linearized = linearized.Without(call.Operation);
                Unlift(call);
                cursor = call.Next;
            }
        }
        return (true, "");
    }

    /// <summary>Whether <paramref name="operation"/> can happen in <paramref name="state"/>, and the state after it.</summary>
    private static bool Step(string? state, Operation operation, out string? next)
    {
        next = state;
        switch (operation.Kind)
        {
            case OperationKind.Get:
                return operation.Unknown || (operation.Found == (state is not null) && (!operation.Found || operation.Read == state));
            case OperationKind.Set:
                next = operation.Value;
                return true;
            case OperationKind.Delete:
                next = null;
                return operation.Unknown || operation.Found == (state is not null);
            default:
                var matches = state is not null && state == operation.Expected;
                if (matches)
                {
                    next = operation.Value;
                }
                return operation.Unknown || operation.Succeeded == matches;
        }
    }

    private static void Lift(Entry call)
    {
        call.Previous!.Next = call.Next;
        call.Next!.Previous = call.Previous;
        var ret = call.Match!;
        ret.Previous!.Next = ret.Next;
        if (ret.Next is not null)
        {
            ret.Next.Previous = ret.Previous;
        }
    }

    private static void Unlift(Entry call)
    {
        var ret = call.Match!;
        ret.Previous!.Next = ret;
        if (ret.Next is not null)
        {
            ret.Next.Previous = ret;
        }
        call.Previous!.Next = call;
        call.Next!.Previous = call;
    }

    private static string Describe(List<Operation> operations, Entry stuck, int deepest)
    {
        var culprit = operations[stuck.Operation];
        var index = operations.IndexOf(culprit);
        var text = new StringBuilder()
            .AppendLine($"  at most {deepest} of {operations.Count} operations can be put in a legal order; no order can place:")
            .AppendLine($"    {culprit}")
            .AppendLine("  operations around it (by call time):");
        foreach (var operation in operations.Skip(Math.Max(0, index - 12)).Take(25))
        {
            text.AppendLine((operation == culprit ? "  > " : "    ") + operation);
        }
        return text.ToString();
    }

    private sealed class Entry(int operation, bool isCall, long time)
    {
        public int Operation { get; } = operation;

        public bool IsCall { get; } = isCall;

        public long Time { get; } = time;

        public Entry? Match { get; set; }

        public Entry? Previous { get; set; }

        public Entry? Next { get; set; }
    }

    /// <summary>An immutable set of operation numbers, compared by value (the memo's key).</summary>
    private readonly struct Bits : IEquatable<Bits>
    {
        private readonly ulong[] _words;
        private readonly int _hash;

        public Bits(int count) : this(new ulong[(count + 63) / 64])
        {
        }

        private Bits(ulong[] words)
        {
            _words = words;
            var hash = new HashCode();
            foreach (var word in words)
            {
                hash.Add(word);
            }
            _hash = hash.ToHashCode();
        }

        public Bits With(int bit)
        {
            var words = (ulong[])_words.Clone();
            words[bit / 64] |= 1UL << (bit % 64);
            return new Bits(words);
        }

        public Bits Without(int bit)
        {
            var words = (ulong[])_words.Clone();
            words[bit / 64] &= ~(1UL << (bit % 64));
            return new Bits(words);
        }

        public bool Equals(Bits other) => _hash == other._hash && _words.AsSpan().SequenceEqual(other._words);

        public override bool Equals(object? obj) => obj is Bits other && Equals(other);

        public override int GetHashCode() => _hash;
    }
}
