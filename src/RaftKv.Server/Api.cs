using System.Text.Json;
using System.Text.Json.Serialization;

namespace RaftKv.Server;

/// <summary>The body of POST /command (DESIGN.md): {"type":"SET","key":"k","value":"v"} and friends.</summary>
public sealed class CommandRequest
{
    public string? Type { get; set; }

    public string? Key { get; set; }

    public string? Value { get; set; }

    public string? Expected { get; set; }

    public ulong? ExpectedVersion { get; set; }

    public string? ClientId { get; set; }

    public ulong? Seq { get; set; }

    /// <summary>"linearizable" (the default) or "stale".</summary>
    public string? Consistency { get; set; }
}

/// <summary>The answer to a command: {"ok":true,"value":...,"found":true,"version":12,"index":12,"term":3,"leader":"n1"}.</summary>
public sealed record CommandResponse(
    bool Ok,
    string? Value,
    bool Found,
    ulong Version,
    ulong Index,
    ulong Term,
    string? Leader,
    string? Error);

/// <summary>An RFC 9457 problem: what went wrong, and the field it was about.</summary>
public sealed record Problem(
    string Type,
    string Title,
    int Status,
    string Detail,
    string? Field = null,
    string? Leader = null);

/// <summary>GET /status.</summary>
public sealed record StatusResponse(
    string NodeId,
    string Role,
    ulong Term,
    string? Leader,
    ulong Commit,
    ulong Applied,
    ulong LastIndex,
    ulong FirstIndex,
    ulong SnapshotIndex,
    IReadOnlyList<string> Voters,
    StorageStatus Storage,
    IReadOnlyList<PeerStatusResponse> Peers,
    string? Digest,
    ulong? DigestIndex);

public sealed record StorageStatus(bool Failed, string? Reason, long WalBytes, int Segments, int PendingProposals, long DroppedInboxMessages);

/// <summary>A follower as the leader sees it (only on the leader), and the link to it (on every node).</summary>
public sealed record PeerStatusResponse(
    string Id,
    string Address,
    bool Connected,
    long DroppedMessages,
    string? State,
    ulong? Match,
    ulong? Next,
    ulong? Lag,
    long? LastContactMs);

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    UseStringEnumConverter = true)]
[JsonSerializable(typeof(CommandRequest))]
[JsonSerializable(typeof(CommandResponse))]
[JsonSerializable(typeof(Problem))]
[JsonSerializable(typeof(StatusResponse))]
internal sealed partial class ApiJson : JsonSerializerContext
{
    /// <summary>Reading requests: the same names, any case; no comments, no trailing commas; numbers as numbers.</summary>
    public static ApiJson Strict { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        PropertyNameCaseInsensitive = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    });
}
