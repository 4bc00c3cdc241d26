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

/// <summary>One member of the configuration in force. Role: voter, learner, or outgoing (a voter leaving through a joint configuration).</summary>
public sealed record MemberResponse(string Id, string Role, string? PeerUrl, string? ClientUrl, bool IsLeader, ulong? Match = null);

/// <summary>GET /cluster/members: the configuration in force on the answering node, and whether a change is in flight.</summary>
public sealed record MembersResponse(string ClusterId, string? Leader, bool Joint, bool ChangeInFlight, IReadOnlyList<MemberResponse> Members);

/// <summary>POST /cluster/members: a node to add, as a learner (the default) or, once it caught up, as a voter.</summary>
public sealed record AddMemberRequest(string? Id, string? PeerUrl, string? ClientUrl, bool? Learner);

/// <summary>POST /cluster/leader: hand leadership to <see cref="To"/>, or (none) to the most caught-up voter.</summary>
public sealed record TransferLeaderRequest(string? To);

/// <summary>The leader after a transfer.</summary>
public sealed record LeaderResponse(string Leader, ulong Term);
