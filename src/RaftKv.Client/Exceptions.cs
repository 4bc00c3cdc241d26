namespace RaftKv.Client;

/// <summary>Something the cluster said or did not say; the message is meant for a person.</summary>
public abstract class RaftKvException : Exception
{
    protected RaftKvException(string message, Exception? inner = null) : base(message, inner)
    {
    }
}

/// <summary>No node could serve the request within the timeout and retries (no leader, nodes down, unreachable).</summary>
public sealed class ClusterUnavailableException(string message, Exception? inner = null) : RaftKvException(message, inner);

/// <summary>
/// A write was sent but its outcome is unknown (timed out, connection lost after sending). With a session it is safe to
/// retry; the session applies it at most once.
/// </summary>
public sealed class OutcomeUnknownException(string message, Exception? inner = null) : RaftKvException(message, inner);

/// <summary>The server refused the request as invalid or too large (4xx); nothing was applied.</summary>
public sealed class InvalidRequestException(string message, int status, string? field) : RaftKvException(message)
{
    public int Status { get; } = status;

    public string? Field { get; } = field;
}

/// <summary>The cluster refused a membership or leadership change for now (409): another change is in flight, or a learner has not caught up.</summary>
public sealed class ConflictException(string message) : RaftKvException(message);

/// <summary>The changes after a watch's position are no longer kept by the node: list the keys again and watch from the listing's index + 1.</summary>
public sealed class WatchCompactedException(string message, Exception? inner = null) : RaftKvException(message, inner);
