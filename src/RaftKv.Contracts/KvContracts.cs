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

    /// <summary>"linearizable" (the default) or "stale".</summary>
    public string? Consistency { get; set; }
}

/// <summary>
/// The answer to a command: {"ok":true,"value":...,"found":true,"version":12,"index":12,"term":3,"leader":"n1"}.
/// <see cref="Version"/> is the index that last wrote the key (0: absent); <see cref="Error"/> is cas_mismatch,
/// stale_sequence or malformed when <see cref="Ok"/> is false.
/// </summary>
public sealed record KvResponse(bool Ok, string? Value, bool Found, ulong Version, ulong Index, ulong Term, string? Leader, string? Error = null)
{
    public const string CasMismatchError = "cas_mismatch";

    [JsonIgnore]
    public bool CasMismatch => Error == CasMismatchError;
}

/// <summary>
/// GET /kv?prefix=…: one page of the keys that start with the prefix, in ordinal (UTF-16) key order. <see cref="Count"/>
/// is how many keys have the prefix in all; when <see cref="More"/>, ask again with after=<see cref="Next"/>.
/// <see cref="Index"/> is the store's revision (the last applied log index) the page was read at.
/// </summary>
public sealed record KvListResponse(IReadOnlyList<KvListItem> Items, int Count, bool More, string? Next, ulong Index, ulong Term, string? Leader);

/// <summary>A listed key, its value and its version (the log index that last wrote it).</summary>
public sealed record KvListItem(string Key, string Value, ulong Version);
