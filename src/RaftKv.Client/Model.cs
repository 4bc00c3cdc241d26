using RaftKv.Contracts;

namespace RaftKv.Client;

public enum Consistency
{
    /// <summary>Through the leader's ReadIndex: sees every write acknowledged before the read began.</summary>
    Linearizable,

    /// <summary>From whichever node answers, as far as it has applied; may miss recent writes.</summary>
    Stale,
}

/// <summary>A status answer, or why the endpoint could not give one.</summary>
public sealed record EndpointStatus(Uri Endpoint, StatusResponse? Status, string? Error);

public sealed record HealthReport(Uri Endpoint, bool Live, bool Ready, string Detail);

/// <summary>One change a watch delivered: its SSE id ("revision.sequence"), PUT or DELETE, the key, the new value, the revision, the value before (if asked).</summary>
public sealed record WatchChange(string Id, string Type, string Key, string? Value, ulong Revision, string? PrevValue);

