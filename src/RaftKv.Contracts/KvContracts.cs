using System.Text.Json.Serialization;

namespace RaftKv.Contracts;

/// <summary>The body of POST /command (DESIGN.md): {"type":"SET","key":"k","value":"v"} and friends.</summary>
public sealed class CommandRequest
{
    /// <summary>GET, SET (or PUT), DELETE or CAS.</summary>
    public string? Type { get; set; }

    public string? Key { get; set; }

    public string? Value { get; set; }

    /// <summary>CAS: the value the key must hold.</summary>
    public string? Expected { get; set; }

    /// <summary>CAS: the version the key must have (0: the key must not exist).</summary>
    public ulong? ExpectedVersion { get; set; }

    /// <summary>Exactly-once sessions: the writer's id, with <see cref="Seq"/>.</summary>
    public string? ClientId { get; set; }

    public ulong? Seq { get; set; }

    /// <summary>SET and CAS: the lease the key is written with (deleted when it ends); none or 0: no lease.</summary>
    public ulong? Lease { get; set; }

    /// <summary>"linearizable" (the default) or "stale".</summary>
    public string? Consistency { get; set; }
}

/// <summary>
/// The answer to a command: {"ok":true,"value":...,"found":true,"version":12,"index":12,"term":3,"leader":"n1"}.
/// <see cref="Version"/> is the index that last wrote the key (0: absent); <see cref="Error"/> is cas_mismatch,
/// stale_sequence, lease_not_found or malformed when <see cref="Ok"/> is false.
/// </summary>
public sealed record KvResponse(bool Ok, string? Value, bool Found, ulong Version, ulong Index, ulong Term, string? Leader, string? Error = null)
{
    public const string CasMismatchError = "cas_mismatch";

    /// <summary>The write named a lease that does not exist (never granted, revoked or expired); nothing was written (HTTP 404).</summary>
    public const string LeaseNotFoundError = "lease_not_found";

    [JsonIgnore]
    public bool CasMismatch => Error == CasMismatchError;

    [JsonIgnore]
    public bool LeaseNotFound => Error == LeaseNotFoundError;
}

/// <summary>
/// GET /kv?prefix=…: one page of the keys that start with the prefix, in ordinal (UTF-16) key order. <see cref="Count"/>
/// is how many keys have the prefix in all; when <see cref="More"/>, ask again with after=<see cref="Next"/>.
/// <see cref="Index"/> is the store's revision (the last applied log index) the page was read at.
/// </summary>
public sealed record KvListResponse(IReadOnlyList<KvListItem> Items, int Count, bool More, string? Next, ulong Index, ulong Term, string? Leader);

/// <summary>A listed key, its value and its version (the log index that last wrote it).</summary>
public sealed record KvListItem(string Key, string Value, ulong Version);

/// <summary>
/// The body of POST /txn: if every comparison holds, the <see cref="Success"/> operations run, else the
/// <see cref="Failure"/> ones; one log entry, atomic. {"compare":[{"key":"lock","target":"exists","exists":false}],
/// "success":[{"type":"PUT","key":"lock","value":"me"}],"failure":[{"type":"GET","key":"lock"}]}.
/// </summary>
public sealed class TxnRequest
{
    public List<TxnCompare>? Compare { get; set; }

    public List<TxnOperation>? Success { get; set; }

    public List<TxnOperation>? Failure { get; set; }

    /// <summary>Exactly-once sessions: the writer's id, with <see cref="Seq"/>.</summary>
    public string? ClientId { get; set; }

    public ulong? Seq { get; set; }
}

/// <summary>
/// One comparison: <see cref="Target"/> (value, version, createRevision or exists) of <see cref="Key"/>, with <see cref="Op"/>
/// (=, !=, &lt;, &gt;; = by default) against the operand named like the target.
/// </summary>
public sealed class TxnCompare
{
    public string? Key { get; set; }

    public string? Target { get; set; }

    public string? Op { get; set; }

    public string? Value { get; set; }

    public ulong? Version { get; set; }

    public ulong? CreateRevision { get; set; }

    public bool? Exists { get; set; }
}

/// <summary>One operation: {"type":"PUT","key":"k","value":"v"}, {"type":"DELETE","key":"k"} or {"type":"GET","key":"k"}.</summary>
public sealed class TxnOperation
{
    public string? Type { get; set; }

    public string? Key { get; set; }

    public string? Value { get; set; }

    /// <summary>PUT: the lease the key is written with; none or 0: no lease.</summary>
    public ulong? Lease { get; set; }
}

/// <summary>
/// The answer to POST /txn: whether the comparisons held, what each operation of the branch that ran saw or did. A branch
/// that would write with a lease that does not exist runs none of its operations: <see cref="Error"/> is lease_not_found.
/// </summary>
public sealed record TxnResponse(bool Succeeded, IReadOnlyList<TxnOperationResult> Results, ulong Index, ulong Term, string? Leader, string? Error = null)
{
    [JsonIgnore]
    public bool LeaseNotFound => Error == KvResponse.LeaseNotFoundError;
}

/// <summary>A GET's value and versions; a PUT's new version and create revision; a DELETE's Found says whether the key was there.</summary>
public sealed record TxnOperationResult(string Type, string Key, bool Found, string? Value, ulong Version, ulong CreateRevision);

/// <summary>The body of POST /leases: {"ttl":10}, the lease's time to live in seconds; clientId and seq make a retry grant once.</summary>
public sealed class LeaseGrantRequest
{
    public long? Ttl { get; set; }

    public string? ClientId { get; set; }

    public ulong? Seq { get; set; }
}

/// <summary>
/// A lease granted (POST /leases), kept alive (POST /leases/{id}/keepalive: <see cref="Index"/> absent) or revoked
/// (DELETE /leases/{id}: <see cref="Deleted"/> keys went with it). <see cref="Ttl"/> is in seconds.
/// </summary>
public sealed record LeaseResponse(ulong Id, long Ttl, ulong? Index, ulong Term, string? Leader, int? Deleted = null);

/// <summary>
/// GET /leases/{id}: the lease's time to live, the seconds left by the leader's clock, how many keys it holds and the first
/// 1,000 of them, in key order.
/// </summary>
public sealed record LeaseInfoResponse(ulong Id, long Ttl, double Remaining, int KeyCount, IReadOnlyList<string> Keys, ulong Term, string? Leader);

/// <summary>One change as GET /watch sends it, in an SSE event's data (the event's id is "revision.sequence").</summary>
public sealed record WatchEventData(string Type, string Key, string? Value, ulong Revision, string? PrevValue);
