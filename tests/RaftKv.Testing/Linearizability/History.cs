using System.Globalization;

namespace RaftKv.Testing.Linearizability;

public enum OperationKind
{
    Get,
    Set,
    Delete,
    Cas,
}

/// <summary>
/// One client operation on one key, with the times it was invoked and answered. An operation whose outcome is unknown
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

    /// <summary>Cas: whether it matched and wrote.</summary>
    public bool Succeeded { get; init; }

    public bool Unknown => Return == long.MaxValue;

    public static Operation Get(int client, string key, long call, long @return, string? value) =>
        new() { Client = client, Kind = OperationKind.Get, Key = key, Call = call, Return = @return, Found = value is not null, Read = value };

    public static Operation Set(int client, string key, string value, long call, long @return) =>
        new() { Client = client, Kind = OperationKind.Set, Key = key, Value = value, Call = call, Return = @return };

    public static Operation Delete(int client, string key, long call, long @return, bool found) =>
        new() { Client = client, Kind = OperationKind.Delete, Key = key, Call = call, Return = @return, Found = found };

    public static Operation Cas(int client, string key, string expected, string value, long call, long @return, bool succeeded) =>
        new() { Client = client, Kind = OperationKind.Cas, Key = key, Expected = expected, Value = value, Call = call, Return = @return, Succeeded = succeeded };

    public override string ToString()
    {
        var window = $"[{Call.ToString(CultureInfo.InvariantCulture)}, {(Unknown ? "?" : Return.ToString(CultureInfo.InvariantCulture))}]";
        var what = Kind switch
        {
            OperationKind.Get => Found ? $"get → '{Read}'" : "get → absent",
            OperationKind.Set => $"set '{Value}'",
            OperationKind.Delete => Found ? "delete → existed" : "delete → absent",
            _ => $"cas '{Expected}' → '{Value}'" + (Unknown ? "" : Succeeded ? " ok" : " mismatch"),
        };
        return $"c{Client} {window} {Key}: {what}{(Unknown ? " (outcome unknown)" : "")}";
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
