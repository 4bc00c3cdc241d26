using System.Text.Json.Serialization;

namespace RaftKv.Client;

public enum Consistency
{
    /// <summary>Through the leader's ReadIndex: sees every write acknowledged before the read began.</summary>
    Linearizable,

    /// <summary>From whichever node answers, as far as it has applied; may miss recent writes.</summary>
    Stale,
}

/// <summary>The answer to an operation. <see cref="Version"/> is the index that last wrote the key (0: absent).</summary>
public sealed record KvResponse(bool Ok, string? Value, bool Found, ulong Version, ulong Index, ulong Term, string? Leader, string? Error)
{
    public bool CasMismatch => Error == "cas_mismatch";
}

/// <summary>One node's view of itself and, on the leader, of its followers (GET /status).</summary>
public sealed record NodeStatus(
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
    IReadOnlyList<PeerStatus> Peers,
    string? Digest,
    ulong? DigestIndex);

public sealed record StorageStatus(bool Failed, string? Reason, long WalBytes, int Segments, int PendingProposals, long DroppedInboxMessages);

public sealed record PeerStatus(string Id, string Address, bool Connected, long DroppedMessages, string? State, ulong? Match, ulong? Next, ulong? Lag, long? LastContactMs);

/// <summary>A status answer, or why the endpoint could not give one.</summary>
public sealed record EndpointStatus(Uri Endpoint, NodeStatus? Status, string? Error);

public sealed record HealthReport(Uri Endpoint, bool Live, bool Ready, string Detail);

internal sealed record Problem(string? Type, string? Title, int Status, string? Detail, string? Field, string? Leader);

internal sealed record CommandBody(
    string Type,
    string Key,
    string? Value = null,
    string? Expected = null,
    ulong? ExpectedVersion = null,
    string? ClientId = null,
    ulong? Seq = null,
    string? Consistency = null);

internal sealed record HealthBody(string? Status, string? Detail);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(CommandBody))]
[JsonSerializable(typeof(KvResponse))]
[JsonSerializable(typeof(NodeStatus))]
[JsonSerializable(typeof(Problem))]
[JsonSerializable(typeof(HealthBody))]
internal sealed partial class ClientJson : JsonSerializerContext;
