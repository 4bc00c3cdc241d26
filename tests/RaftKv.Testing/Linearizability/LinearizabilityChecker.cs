using System.Text;

namespace RaftKv.Testing.Linearizability;

/// <summary>
/// The verdict on a history; on a violation, the smallest failing key (or group of keys, named "a+b") and the operations
/// around the failure. <see cref="Keys"/> counts the groups checked apart.
/// </summary>
public sealed record CheckResult(bool Linearizable, int Keys, int Operations, string? FailingKey, string Report)
{
    public override string ToString() => Report;
}

/// <summary>
/// Checks that a key-value history is linearizable: that there is one order of all operations, consistent with real time
/// (an operation that returned before another was called comes first), in which every read sees the latest write. The
/// search is Wing &amp; Gong's with Lowe's memoization of visited (linearized set, state) pairs, as in Knossos and
/// Porcupine, run per key: keys are independent registers, so a history is linearizable exactly when each key's is.
/// A transaction ties the keys it names together: keys linked by transactions are checked as one group, whose state is
/// the value of each of its keys (so a workload keeps its transactions within small groups of keys, or the search grows).
/// </summary>
public static class LinearizabilityChecker
{
    /// <summary>Gives up on a key after this many search steps (a bound on test time, reported if hit).</summary>
    public const long MaxSteps = 50_000_000;

    public static CheckResult Check(IEnumerable<Operation> history)
    {
        ArgumentNullException.ThrowIfNull(history);
        var groups = Group([.. history]);
        var total = groups.Sum(g => g.Operations.Count);
        var failures = new List<(string Name, int Count, string Detail)>();
        foreach (var (keys, group) in groups)
        {
            var operations = group.OrderBy(o => o.Call).ToList();
            var (ok, detail) = CheckGroup(operations, keys);
            if (!ok)
            {
                failures.Add((string.Join('+', keys), operations.Count, detail));
            }
        }
        var unit = groups.Any(g => g.Keys.Length > 1) ? "key groups" : "keys";
        if (failures.Count == 0)
        {
            return new CheckResult(true, groups.Count, total, null, $"linearizable: {total} operations on {groups.Count} {unit}");
        }
        var smallest = failures.OrderBy(f => f.Count).ThenBy(f => f.Name, StringComparer.Ordinal).First();
        var report = new StringBuilder()
            .AppendLine($"NOT linearizable: {failures.Count} of {groups.Count} {unit} fail; the smallest is '{smallest.Name}' ({smallest.Count} operations)")
            .Append(smallest.Detail)
            .ToString();
        return new CheckResult(false, groups.Count, total, smallest.Name, report);
    }

    /// <summary>
    /// Splits the history into groups of keys that no operation links to keys outside (a union-find over the keys each
    /// operation names), each with its keys in ordinal order and its operations.
    /// </summary>
    private static List<(string[] Keys, List<Operation> Operations)> Group(List<Operation> history)
    {
        var parent = new Dictionary<string, string>(StringComparer.Ordinal);
        string Root(string key)
        {
            while (parent[key] != key)
            {
                key = parent[key] = parent[parent[key]];
            }
            return key;
        }
        foreach (var operation in history)
        {
            var keys = operation.Keys;
            foreach (var key in keys)
            {
                parent.TryAdd(key, key);
            }
            for (var i = 1; i < keys.Count; i++)
            {
                var (a, b) = (Root(keys[0]), Root(keys[i]));
                if (a != b)
                {
                    parent[b] = a;
                }
            }
        }
        var keysOf = parent.Keys.GroupBy(Root, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.Order(StringComparer.Ordinal).ToArray(), StringComparer.Ordinal);
        return [.. history.GroupBy(o => Root(o.Key), StringComparer.Ordinal)
            .Select(g => (keysOf[g.Key], g.ToList()))
            .OrderBy(g => g.Item1[0], StringComparer.Ordinal)];
    }

    /// <summary>The search for one group of keys: each a register that is absent (null) or holds a value.</summary>
    private static (bool Linearizable, string Detail) CheckGroup(List<Operation> history, string[] keys)
    {
        var operations = WithUnobservedValuesMerged(history);
        var count = operations.Count;
        var slots = new Dictionary<string, int>(keys.Length, StringComparer.Ordinal);
        for (var i = 0; i < keys.Length; i++)
        {
            slots[keys[i]] = i;
        }
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

        // The linearized set is kept in two parts: operations with a known outcome, and those whose outcome is unknown.
        // An unknown operation can always be placed last (its return is at infinity, and any outcome is allowed), so a
        // configuration dominates every other with the same known part and state that has linearized more unknown
        // ones: whatever completes the larger one completes it too. Pruning dominated configurations, not just repeated
        // ones, keeps a few dozen unknown outcomes from multiplying the search (each could take effect or not at every
        // point), which matters most when the history fails and the whole space must be refuted.
        var bit = new int[count]; // an operation's bit in the known or the unknown set
        var (knownCount, unknownCount) = (0, 0);
        for (var i = 0; i < count; i++)
        {
            bit[i] = operations[i].Unknown ? unknownCount++ : knownCount++;
        }
        var known = new Bits(knownCount);
        var unknown = new Bits(unknownCount);
        var seen = new Dictionary<(Bits Known, Registers State), List<Bits>>();
        var stack = new Stack<(Entry Call, Registers State)>();
        var state = new Registers(new string?[keys.Length]);
        var cursor = head.Next;
        var deepest = 0;
        Entry? stuckAt = null;
        long steps = 0;
        // Done when every operation with a known outcome is placed: the unknown ones left can all go last.
        var placedKnown = 0;
        while (placedKnown < knownCount)
        {
            if (++steps > MaxSteps)
            {
                return (false, $"search gave up after {MaxSteps:N0} steps: the history is too concurrent to decide\n");
            }
            if (cursor!.IsCall)
            {
                var operation = operations[cursor.Operation];
                if (Step(state, operation, slots, out var next))
                {
                    var isUnknown = operation.Unknown;
                    var candidateKnown = isUnknown ? known : known.With(bit[cursor.Operation]);
                    var candidateUnknown = isUnknown ? unknown.With(bit[cursor.Operation]) : unknown;
                    if (FirstVisit(seen, candidateKnown, next, candidateUnknown))
                    {
                        stack.Push((cursor, state));
                        state = next;
                        (known, unknown) = (candidateKnown, candidateUnknown);
                        placedKnown += isUnknown ? 0 : 1;
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
                    return (false, Describe(history, stuckAt ?? cursor, deepest));
                }
                var (call, before) = stack.Pop();
                state = before;
                if (operations[call.Operation].Unknown)
                {
                    unknown = unknown.Without(bit[call.Operation]);
                }
                else
                {
                    known = known.Without(bit[call.Operation]);
                    placedKnown--;
                }
                Unlift(call);
                cursor = call.Next;
            }
        }
        return (true, "");
    }

    /// <summary>
    /// The operations with every value that no operation observes (no read returns it; no compare-and-set or comparison
    /// names it) replaced by one token. The model only ever compares a key's value with an observed value (or absence),
    /// so two unobserved values behave alike; merging them merges states that differ in nothing that matters, which
    /// keeps writes whose outcome is unknown (each could take effect at any later point) from multiplying the states.
    /// </summary>
    private static List<Operation> WithUnobservedValuesMerged(List<Operation> operations)
    {
        var observed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var operation in operations)
        {
            if (operation.Read is { } read)
            {
                observed.Add(read);
            }
            if (operation.Expected is { } expected)
            {
                observed.Add(expected);
            }
            foreach (var value in operation.Conditions.Select(c => c.Value).Concat(operation.Seen.Select(s => s.Value)))
            {
                if (value is not null)
                {
                    observed.Add(value);
                }
            }
        }
        var token = "\u0000unobserved";
        while (observed.Contains(token))
        {
            token += "\u0000";
        }
        string? Merge(string? value) => value is null || observed.Contains(value) ? value : token;
        return [.. operations.Select(o => o.Kind switch
        {
            OperationKind.Set or OperationKind.Cas => o with { Value = Merge(o.Value) },
            OperationKind.Txn => o with
            {
                Success = [.. o.Success.Select(s => s with { Value = Merge(s.Value) })],
                Failure = [.. o.Failure.Select(s => s with { Value = Merge(s.Value) })],
            },
            _ => o,
        })];
    }

    /// <summary>
    /// Records a configuration; false if it, or one that dominates it (the same known operations and state, a subset of
    /// its unknown ones), was visited already: it was, or is being, searched from there.
    /// </summary>
    private static bool FirstVisit(Dictionary<(Bits Known, Registers State), List<Bits>> seen, Bits known, Registers state, Bits unknown)
    {
        if (!seen.TryGetValue((known, state), out var visited))
        {
            seen[(known, state)] = [unknown];
            return true;
        }
        foreach (var other in visited)
        {
            if (other.IsSubsetOf(unknown))
            {
                return false;
            }
        }
        visited.Add(unknown);
        return true;
    }

    /// <summary>Whether <paramref name="operation"/> can happen in <paramref name="state"/>, and the state after it.</summary>
    private static bool Step(Registers state, Operation operation, Dictionary<string, int> slots, out Registers next)
    {
        next = state;
        if (operation.Kind == OperationKind.Txn)
        {
            return StepTxn(state, operation, slots, out next);
        }
        var slot = slots[operation.Key];
        var current = state[slot];
        switch (operation.Kind)
        {
            case OperationKind.Get:
                return operation.Unknown || (operation.Found == (current is not null) && (!operation.Found || operation.Read == current));
            case OperationKind.Set:
                next = state.With(slot, operation.Value);
                return true;
            case OperationKind.Delete:
                next = state.With(slot, null);
                return operation.Unknown || operation.Found == (current is not null);
            default:
                var matches = current is not null && current == operation.Expected;
                if (matches)
                {
                    next = state.With(slot, operation.Value);
                }
                return operation.Unknown || operation.Succeeded == matches;
        }
    }

    /// <summary>
    /// A transaction as the state machine runs it: every comparison against the state before it; then the branch they
    /// choose, step by step, each GET and DELETE seeing the steps before it. A known outcome must match: the branch that
    /// ran, and what its steps saw.
    /// </summary>
    private static bool StepTxn(Registers state, Operation operation, Dictionary<string, int> slots, out Registers next)
    {
        next = state;
        var holds = true;
        foreach (var condition in operation.Conditions)
        {
            holds &= condition.Holds(state[slots[condition.Key]]);
        }
        if (!operation.Unknown && holds != operation.Succeeded)
        {
            return false;
        }
        var branch = holds ? operation.Success : operation.Failure;
        string?[]? values = null; // copied on the first write
        for (var i = 0; i < branch.Count; i++)
        {
            var step = branch[i];
            var slot = slots[step.Key];
            var current = values is null ? state[slot] : values[slot];
            var saw = operation.Unknown || i >= operation.Seen.Count ? null : operation.Seen[i];
            switch (step.Kind)
            {
                case TxnStepKind.Get:
                    if (saw is not null && (saw.Found != (current is not null) || (saw.Found && saw.Value != current)))
                    {
                        return false;
                    }
                    break;
                case TxnStepKind.Put:
                    values ??= state.Copy();
                    values[slot] = step.Value;
                    break;
                default:
                    if (saw is not null && saw.Found != (current is not null))
                    {
                        return false;
                    }
                    values ??= state.Copy();
                    values[slot] = null;
                    break;
            }
        }
        if (values is not null)
        {
            next = new Registers(values);
        }
        return true;
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

    /// <summary>The values of a group's keys (null: absent), immutable and compared by value (part of the memo's key).</summary>
    private readonly struct Registers : IEquatable<Registers>
    {
        private readonly string?[] _values;
        private readonly int _hash;

        public Registers(string?[] values)
        {
            _values = values;
            var hash = new HashCode();
            foreach (var value in values)
            {
                hash.Add(value);
            }
            _hash = hash.ToHashCode();
        }

        public string? this[int slot] => _values[slot];

        public Registers With(int slot, string? value)
        {
            if (_values[slot] == value)
            {
                return this;
            }
            var values = Copy();
            values[slot] = value;
            return new Registers(values);
        }

        public string?[] Copy() => (string?[])_values.Clone();

        public bool Equals(Registers other) => _hash == other._hash && _values.AsSpan().SequenceEqual(other._values);

        public override bool Equals(object? obj) => obj is Registers other && Equals(other);

        public override int GetHashCode() => _hash;
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

        public bool IsSubsetOf(Bits other)
        {
            for (var i = 0; i < _words.Length; i++)
            {
                if ((_words[i] & ~other._words[i]) != 0)
                {
                    return false;
                }
            }
            return true;
        }

        public bool Equals(Bits other) => _hash == other._hash && _words.AsSpan().SequenceEqual(other._words);

        public override bool Equals(object? obj) => obj is Bits other && Equals(other);

        public override int GetHashCode() => _hash;
    }
}
