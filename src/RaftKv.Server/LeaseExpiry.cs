using RaftKv.Hosting;
using RaftKv.RaftCore;
using RaftKv.StateMachine;

namespace RaftKv.Server;

/// <summary>
/// The leader's half of leases: every <see cref="CheckEvery"/> it asks the <see cref="LeaseClock"/> which leases ran out
/// and proposes each one's expiry as a log entry carrying this node's term (<see cref="KvLeaseCommand.Expire"/>), at most
/// <see cref="MaxExpiring"/> at once. Followers only keep their clocks in step with the replicated leases. An expiry that
/// reaches the log in another term (this node lost leadership meanwhile and the proposal was forwarded) is ignored when
/// applied, so only the leader that kept a lease's countdown can end it.
/// </summary>
internal sealed partial class LeaseExpiry(IRaftNode node, LeaseClock clock, TimeProvider time, ILogger<LeaseExpiry> logger) : BackgroundService
{
    public static readonly TimeSpan CheckEvery = TimeSpan.FromMilliseconds(250);

    /// <summary>Expiries proposed and not yet answered, at most.</summary>
    public const int MaxExpiring = 64;

    private int _expiring;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(CheckEvery, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
            {
                // The term first: a leader read with an older term than its own is caught when the expiry is applied.
                var term = node.KnownTerm;
                var leading = node.KnownLeader == node.Id;
                foreach (var id in clock.Due(leading, term, MaxExpiring - Volatile.Read(ref _expiring)))
                {
                    Interlocked.Increment(ref _expiring);
                    _ = ExpireAsync(id, term, stoppingToken);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    private async Task ExpireAsync(ulong id, Term term, CancellationToken stoppingToken)
    {
        try
        {
            var answer = await node.ProposeAsync(KvLeaseCommand.Expire(id, term.Value).Encode(), stoppingToken).ConfigureAwait(false);
            if (answer.Status != AnswerStatus.Ok)
            {
                LogExpiryFailed(id, answer.Status, answer.Reason);
            }
            else if (KvLeaseResult.Decode(answer.Result.Span) is { Ok: true } result)
            {
                LogExpired(id, result.TtlSeconds, result.Deleted, result.Index);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (FormatException error)
        {
            LogExpiryFailed(id, AnswerStatus.Unknown, error.Message);
        }
        finally
        {
            clock.RevokeEnded(id);
            Interlocked.Decrement(ref _expiring);
        }
    }

    [LoggerMessage(EventId = 601, Level = LogLevel.Information, Message = "lease {Lease} ({Ttl} s) expired: {Deleted} keys deleted at index {Index}")]
    private partial void LogExpired(ulong lease, long ttl, int deleted, ulong index);

    [LoggerMessage(EventId = 602, Level = LogLevel.Warning, Message = "the expiry of lease {Lease} was not applied ({Status}: {Reason}); it is tried again while this node leads")]
    private partial void LogExpiryFailed(ulong lease, AnswerStatus status, string? reason);
}
