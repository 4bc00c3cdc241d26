namespace RaftKv.Contracts;

/// <summary>An RFC 9457 problem (application/problem+json): what went wrong, the field it was about, the leader if known.</summary>
public sealed record ProblemResponse(string Type, string Title, int Status, string Detail, string? Field = null, string? Leader = null)
{
    public const string ContentType = "application/problem+json";
}

/// <summary>GET /status: one node's view of itself and, on the leader, of its followers.</summary>
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
    IReadOnlyList<PeerStatus> Peers,
    string? Digest = null,
    ulong? DigestIndex = null);

public sealed record StorageStatus(bool Failed, string? Reason, long WalBytes, int Segments, int PendingProposals, long DroppedInboxMessages);

/// <summary>A follower as the leader sees it (progress fields only on the leader), and the link to it (on every node).</summary>
public sealed record PeerStatus(
    string Id,
    string Address,
    bool Connected,
    long DroppedMessages,
    string? State,
    ulong? Match,
    ulong? Next,
    ulong? Lag,
    long? LastContactMs);

/// <summary>GET /health and /health/ready: {"status":"Healthy","detail":"..."}.</summary>
public sealed record HealthResponse(string Status, string? Detail);
