namespace RaftKv.Cli;

/// <summary>raft-cli's exit codes, as its --help and the README list them.</summary>
public static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>Something unexpected; the message says what.</summary>
    public const int Failed = 1;

    /// <summary>Bad arguments: a missing argument, a malformed URL, a value file that does not exist.</summary>
    public const int Usage = 2;

    /// <summary>get: the key does not exist.</summary>
    public const int NotFound = 3;

    /// <summary>cas: the current value (or version) was not the expected one; nothing was written.</summary>
    public const int CasMismatch = 4;

    /// <summary>No node could serve the request (no leader, nodes down or unreachable).</summary>
    public const int Unavailable = 5;

    /// <summary>A write may or may not have been applied (it timed out after it was sent).</summary>
    public const int OutcomeUnknown = 6;

    /// <summary>The server refused the request as invalid or too large; nothing was applied.</summary>
    public const int Rejected = 7;

    /// <summary>member/leader: the cluster refused the change for now (another change is in flight, a learner has not caught up); watch: its start is no longer kept; lease grant: the lease limit.</summary>
    public const int Conflict = 8;

    /// <summary>lease keepalive|revoke|info, set --lease, txn: the lease does not exist (never granted, revoked, or expired); nothing was written.</summary>
    public const int LeaseNotFound = 9;

    public const string Help = """
        Exit codes:
          0  success
          1  unexpected failure
          2  usage error (missing or bad argument, malformed URL, missing value file)
          3  key not found (get), no key with the prefix (list)
          4  CAS mismatch: nothing written (cas); the failure branch ran (txn)
          5  cluster unavailable: no node could serve the request
          6  outcome unknown: the write may or may not have been applied
          7  rejected by the server as invalid or too large
          8  refused for now: another membership change is in flight, or the learner has not caught up; watch: the
             start revision is no longer kept (list again); lease grant: the cluster holds as many leases as it keeps
          9  lease not found: never granted, revoked, or expired (lease keepalive|revoke|info; set --lease and txn
             wrote nothing)
        """;
}
