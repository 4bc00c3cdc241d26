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
