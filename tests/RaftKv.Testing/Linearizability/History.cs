using System.Globalization;

namespace RaftKv.Testing.Linearizability;

public enum OperationKind
{
    Get,
    Set,
    Delete,
    Cas,

    /// <summary>A transaction: comparisons, then the success or the failure steps, atomically, on one or more keys.</summary>
    Txn,
}

/// <summary>What a comparison of a transaction asks of a key's value, in the checker's model.</summary>
public enum ConditionKind
{
    /// <summary>The key holds <see cref="TxnCondition.Value"/> (an absent key holds nothing).</summary>
    ValueIs,

    Exists,

    Absent,

    /// <summary>
    /// The key was last written at <see cref="TxnCondition.Version"/> (0: absent). The workload writes every value to a
    /// key at most once, so a version names one value: <see cref="TxnCondition.Value"/>, what the client read with that
    /// version (null for version 0), and the model compares that.
    /// </summary>
    VersionIs,
}

/// <summary>One comparison of a transaction.</summary>
public sealed record TxnCondition(string Key, ConditionKind Kind, string? Value = null, ulong Version = 0)
{
    public static TxnCondition ValueIs(string key, string value) => new(key, ConditionKind.ValueIs, value);

    public static TxnCondition Exists(string key) => new(key, ConditionKind.Exists);

    public static TxnCondition Absent(string key) => new(key, ConditionKind.Absent);

    public static TxnCondition VersionIs(string key, ulong version, string? valueAtVersion) => new(key, ConditionKind.VersionIs, valueAtVersion, version);

    /// <summary>Whether the comparison holds when the key holds <paramref name="current"/> (null: absent).</summary>
    public bool Holds(string? current) => Kind switch
    {
        ConditionKind.ValueIs => current is not null && current == Value,
        ConditionKind.Exists => current is not null,
        ConditionKind.Absent => current is null,
        _ => current == Value,
    };

    public override string ToString() => Kind switch
    {
        ConditionKind.ValueIs => $"{Key} = '{Value}'",
        ConditionKind.Exists => $"{Key} exists",
        ConditionKind.Absent => $"{Key} absent",
        _ => string.Create(CultureInfo.InvariantCulture, $"version({Key}) = {Version}") + (Value is null ? " (absent)" : $" ('{Value}')"),
    };
}

public enum TxnStepKind
{
    Get,
    Put,
    Delete,
}

/// <summary>One operation of a transaction's branch.</summary>
public sealed record TxnStep(TxnStepKind Kind, string Key, string? Value = null)
{
    public static TxnStep Get(string key) => new(TxnStepKind.Get, key);

    public static TxnStep Put(string key, string value) => new(TxnStepKind.Put, key, value);

    public static TxnStep Delete(string key) => new(TxnStepKind.Delete, key);

    public override string ToString() => Kind switch
    {
        TxnStepKind.Get => "get " + Key,
        TxnStepKind.Put => $"put {Key} '{Value}'",
        _ => "delete " + Key,
    };
}

/// <summary>What one step of the branch that ran saw: a GET the value (null: absent), a DELETE whether the key existed.</summary>
public sealed record TxnSeen(bool Found, string? Value = null)
{
    public static TxnSeen Absent { get; } = new(false);

    /// <summary>A GET that saw <paramref name="value"/>.</summary>
    public static TxnSeen Of(string value) => new(true, value);

    /// <summary>A DELETE of a key that existed.</summary>
    public static TxnSeen Existed { get; } = new(true);

    public override string ToString() => Found ? Value is null ? "existed" : $"'{Value}'" : "absent";
}

/// <summary>
/// One client operation on one key (a transaction: on the keys it names), with the times it was invoked and answered. An operation whose outcome is unknown
/// (timed out, connection lost after sending) has <see cref="Return"/> = <see cref="long.MaxValue"/>: it may take effect
/// at any time after its call, or never. Operations known not to have happened (refused, not sent) are left out.
/// </summary>
public sealed record Operation
{
    public required int Client { get; init; }

    public required OperationKind Kind { get; init; }

    public required string Key { get; init; }

    /// <summary>Set, Cas: the value written.</summary>
    public string? Value { get; init; }

    /// <summary>Cas: the value the key had to hold.</summary>
    public string? Expected { get; init; }

    public required long Call { get; init; }

    public required long Return { get; init; }

    /// <summary>Get: whether the key existed. Delete: whether it existed before.</summary>
    public bool Found { get; init; }

    /// <summary>Get: the value read.</summary>
    public string? Read { get; init; }

    /// <summary>Cas: whether it matched and wrote. Txn: whether the comparisons held (the success branch ran).</summary>
    public bool Succeeded { get; init; }

    /// <summary>Txn: the comparisons, all of which must hold for the success branch to run.</summary>
    public IReadOnlyList<TxnCondition> Conditions { get; init; } = [];

    /// <summary>Txn: the steps run when the comparisons hold.</summary>
    public IReadOnlyList<TxnStep> Success { get; init; } = [];

    /// <summary>Txn: the steps run when they do not.</summary>
    public IReadOnlyList<TxnStep> Failure { get; init; } = [];

    /// <summary>Txn with a known outcome: what each step of the branch that ran saw (checked for GET and DELETE).</summary>
    public IReadOnlyList<TxnSeen> Seen { get; init; } = [];

    /// <summary>
    /// An answered write: the log index it was applied at (its revision, what a watcher sees it at); 0 when not known.
    /// The linearizability check ignores it.
    /// </summary>
    public ulong Index { get; init; }

    /// <summary>The keys the operation reads or writes: its one key, or every key a transaction names.</summary>
    public IReadOnlyList<string> Keys => Kind == OperationKind.Txn
        ? [.. Conditions.Select(c => c.Key).Concat(Success.Select(s => s.Key)).Concat(Failure.Select(s => s.Key)).Distinct(StringComparer.Ordinal)]
        : [Key];

    public bool Unknown => Return == long.MaxValue;

    public static Operation Get(int client, string key, long call, long @return, string? value) =>
        new() { Client = client, Kind = OperationKind.Get, Key = key, Call = call, Return = @return, Found = value is not null, Read = value };

    public static Operation Set(int client, string key, string value, long call, long @return) =>
        new() { Client = client, Kind = OperationKind.Set, Key = key, Value = value, Call = call, Return = @return };

    public static Operation Delete(int client, string key, long call, long @return, bool found) =>
        new() { Client = client, Kind = OperationKind.Delete, Key = key, Call = call, Return = @return, Found = found };

    public static Operation Cas(int client, string key, string expected, string value, long call, long @return, bool succeeded) =>
        new() { Client = client, Kind = OperationKind.Cas, Key = key, Expected = expected, Value = value, Call = call, Return = @return, Succeeded = succeeded };

    /// <summary>A transaction; <paramref name="seen"/> is what the branch that ran saw (empty when the outcome is unknown).</summary>
    public static Operation Txn(int client, IReadOnlyList<TxnCondition> conditions, IReadOnlyList<TxnStep> success, IReadOnlyList<TxnStep> failure,
        long call, long @return, bool succeeded, IReadOnlyList<TxnSeen>? seen = null)
    {
        ArgumentNullException.ThrowIfNull(conditions);
        ArgumentNullException.ThrowIfNull(success);
        ArgumentNullException.ThrowIfNull(failure);
        var key = conditions.Select(c => c.Key).Concat(success.Select(s => s.Key)).Concat(failure.Select(s => s.Key)).FirstOrDefault()
            ?? throw new ArgumentException("a transaction names at least one key", nameof(conditions));
        return new()
        {
            Client = client, Kind = OperationKind.Txn, Key = key, Call = call, Return = @return, Succeeded = succeeded,
            Conditions = conditions, Success = success, Failure = failure, Seen = seen ?? [],
        };
    }

    /// <summary>The steps of the branch that ran (for an operation whose outcome is known).</summary>
    public IReadOnlyList<TxnStep> Ran => Succeeded ? Success : Failure;

    public override string ToString()
    {
        var window = $"[{Call.ToString(CultureInfo.InvariantCulture)}, {(Unknown ? "?" : Return.ToString(CultureInfo.InvariantCulture))}]";
        var what = Kind switch
        {
            OperationKind.Get => Found ? $"get → '{Read}'" : "get → absent",
            OperationKind.Set => $"set '{Value}'",
            OperationKind.Delete => Found ? "delete → existed" : "delete → absent",
            OperationKind.Txn => DescribeTxn(),
            _ => $"cas '{Expected}' → '{Value}'" + (Unknown ? "" : Succeeded ? " ok" : " mismatch"),
        };
        return Kind == OperationKind.Txn
            ? $"c{Client} {window} {what}{(Unknown ? " (outcome unknown)" : "")}"
            : $"c{Client} {window} {Key}: {what}{(Unknown ? " (outcome unknown)" : "")}";
    }

    private string DescribeTxn()
    {
        var text = new System.Text.StringBuilder("txn");
        if (Conditions.Count > 0)
        {
            text.Append(" if ").Append(string.Join(" and ", Conditions));
        }
        text.Append(" then ").Append(Success.Count == 0 ? "nothing" : string.Join(", ", Success));
        if (Failure.Count > 0)
        {
            text.Append(" else ").Append(string.Join(", ", Failure));
        }
        if (!Unknown)
        {
            text.Append(Succeeded ? " → then" : " → else");
            var shown = Ran.Zip(Seen).Where(p => p.First.Kind != TxnStepKind.Put).Select(p => $"{p.First.Key} {p.Second}").ToList();
            if (shown.Count > 0)
            {
                text.Append(": ").Append(string.Join(", ", shown));
            }
        }
        return text.ToString();
    }
}

/// <summary>A history of operations that many clients recorded concurrently (thread-safe to add to).</summary>
public sealed class History
{
    private readonly List<Operation> _operations = [];

    public void Add(Operation operation)
    {
        lock (_operations)
        {
            _operations.Add(operation);
        }
    }

    public IReadOnlyList<Operation> Operations
    {
        get
        {
            lock (_operations)
            {
                return [.. _operations];
            }
        }
    }

    public int Count
    {
        get
        {
            lock (_operations)
            {
                return _operations.Count;
            }
        }
    }
}
