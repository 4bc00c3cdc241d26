using System.Text.Json;
using RaftKv.Contracts;

namespace RaftKv.Client;

/// <summary>How a <see cref="LeaseKeeper"/> behaves.</summary>
public sealed record LeaseKeeperOptions
{
    /// <summary>Called after each keepalive the cluster confirmed, on the keeper's task: keep it short. What it throws is ignored.</summary>
    public Action<LeaseResponse>? KeptAlive { get; init; }

    /// <summary>Revoke the lease when the keeper is disposed (the default); false leaves it to expire a TTL after the last keepalive.</summary>
    public bool RevokeOnDispose { get; init; } = true;
}

public enum LeaseLossReason
{
    /// <summary>The cluster has no such lease: it was revoked, or it expired.</summary>
    NotFound,

    /// <summary>No keepalive succeeded for a whole TTL since the last one that did (or the cluster refused them): it may have expired.</summary>
    Unconfirmed,

    /// <summary>The keeper was disposed.</summary>
    Stopped,
}

/// <summary>Why a <see cref="LeaseKeeper"/> no longer vouches for its lease, in words for a person.</summary>
public sealed record LeaseLoss(LeaseLossReason Reason, string Detail);

/// <summary>
/// Keeps a lease alive in the background: a keepalive every TTL/3, and, when one fails (no leader, a node down), again
/// on the other endpoints until a whole TTL has passed since the last keepalive that succeeded. Then, or as soon as the
/// cluster says the lease is gone, <see cref="Lost"/> is cancelled and <see cref="WhenLost"/> completes: whoever acts on
/// behalf of the lease (holds a lock, leads) must stop. Disposing stops the keepalives, cancels <see cref="Lost"/>, and
/// revokes the lease (best effort, within 5 s; if that fails the lease expires by itself a TTL after its last keepalive).
/// Made by <see cref="RaftKvClient.KeepLeaseAsync"/> or <see cref="RaftKvClient.KeepExistingLeaseAsync"/>; it uses, and
/// does not own, that client: dispose the keeper first.
/// </summary>
public sealed class LeaseKeeper : IAsyncDisposable
{
    private static readonly TimeSpan RevokeTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan ShortestRetryDelay = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan LongestRetryDelay = TimeSpan.FromSeconds(1);
    private readonly RaftKvClient _client;
    private readonly LeaseKeeperOptions _options;
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _lost = new();
    private readonly TaskCompletionSource<LeaseLoss> _loss = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Task _keeping;
    private int _disposed;

    // confirmedAt: a timestamp (TimeProvider.GetTimestamp) no later than when the lease's countdown last restarted.
    internal LeaseKeeper(RaftKvClient client, ulong id, long ttlSeconds, long confirmedAt, LeaseKeeperOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(ttlSeconds, 1);
        _client = client;
        _options = options;
        Id = id;
        TtlSeconds = ttlSeconds;
        Lost = _lost.Token;
        _keeping = Task.Run(() => KeepAsync(confirmedAt));
    }

    public ulong Id { get; }

    public long TtlSeconds { get; }

    /// <summary>Cancelled when the lease is lost (or no longer kept: the keeper was disposed).</summary>
    public CancellationToken Lost { get; }

    /// <summary>Completes, with the reason, when <see cref="Lost"/> is cancelled.</summary>
    public Task<LeaseLoss> WhenLost => _loss.Task;

    /// <summary>
    /// The loop. Its invariant: <c>confirmed</c> is when the last keepalive that succeeded was sent, so the lease lives at
    /// least until confirmed + TTL by the leader's clock (it restarted the countdown after it received it); past that this
    /// keeper cannot vouch for it. Every wait and every request ends by then, so the loop runs at most a TTL past its last success.
    /// </summary>
    private async Task KeepAsync(long confirmed)
    {
        var ttl = TimeSpan.FromSeconds(TtlSeconds);
        var interval = ttl / 3;
        // A node that does not answer within a third of the TTL is passed over for the next endpoint.
        var attemptTimeout = interval < _client.Options.AttemptTimeout ? interval : _client.Options.AttemptTimeout;
        var retryDelay = TimeSpan.FromTicks(Math.Clamp(ttl.Ticks / 10, ShortestRetryDelay.Ticks, LongestRetryDelay.Ticks));
        var failed = false;
        var lastProblem = "";
        try
        {
            while (true)
            {
                var left = ttl - TimeProvider.System.GetElapsedTime(confirmed);
                var wait = failed ? retryDelay : interval - (ttl - left);
                if (left > TimeSpan.Zero && wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait < left ? wait : left, _stop.Token).ConfigureAwait(false);
                    left = ttl - TimeProvider.System.GetElapsedTime(confirmed);
                }
                if (left <= TimeSpan.Zero)
                {
                    Lose(LeaseLossReason.Unconfirmed, $"no keepalive of lease {Id} succeeded for its TTL of {TtlSeconds} s ({lastProblem})");
                    return;
                }
                using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                deadline.CancelAfter(left);
                var sent = TimeProvider.System.GetTimestamp();
                LeaseResponse? answer;
                try
                {
                    answer = await _client.KeepAliveCoreAsync(Id, attemptTimeout, deadline.Token).ConfigureAwait(false);
                }
                catch (InvalidRequestException error)
                {
                    Lose(LeaseLossReason.Unconfirmed, $"the cluster refused to keep lease {Id} alive ({error.Status}: {error.Message})");
                    return;
                }
                catch (Exception error) when (error is RaftKvException or HttpRequestException or IOException or JsonException
                    || (error is OperationCanceledException && !_stop.IsCancellationRequested))
                {
                    failed = true; // tried on every endpoint, or the TTL is up: the top of the loop decides
                    lastProblem = error is OperationCanceledException ? "no answer in time" : error.Message;
                    continue;
                }
                if (answer is null)
                {
                    Lose(LeaseLossReason.NotFound, $"the cluster has no lease {Id}: it was revoked, or it expired");
                    return;
                }
                confirmed = sent;
                failed = false;
                try
                {
                    _options.KeptAlive?.Invoke(answer);
                }
                catch (Exception)
                {
                    // The caller's; it must not stop the keepalives.
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // Disposed.
        }
        catch (Exception error)
        {
            // A bug. A keeper that died without a word would leave its holder acting for a lease nobody keeps: the
            // loss says what happened (and DisposeAsync does not throw it again).
            Lose(LeaseLossReason.Unconfirmed, $"the keeper of lease {Id} failed: {error.GetType().Name}: {error.Message}");
        }
    }

    private void Lose(LeaseLossReason reason, string detail)
    {
        if (!_loss.TrySetResult(new LeaseLoss(reason, detail)))
        {
            return;
        }
        try
        {
            _lost.Cancel();
        }
        catch (AggregateException)
        {
            // Thrown by the caller's registrations on Lost; the loss stands.
        }
    }

    /// <summary>Stops the keepalives, cancels <see cref="Lost"/>, and revokes the lease unless told not to (at most 5 s).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stop.CancelAsync().ConfigureAwait(false);
        await _keeping.ConfigureAwait(false);
        var gone = _loss.Task.IsCompleted && _loss.Task.Result.Reason == LeaseLossReason.NotFound;
        var revoke = _options.RevokeOnDispose && !gone;
        // Lost first: whoever acts for the lease stops before it is revoked.
        Lose(LeaseLossReason.Stopped, revoke ? $"lease {Id} revoked by its keeper" : $"lease {Id} no longer kept alive");
        if (revoke)
        {
            using var bound = new CancellationTokenSource(RevokeTimeout);
            try
            {
                await _client.RevokeLeaseAsync(Id, bound.Token).ConfigureAwait(false);
            }
            catch (Exception error) when (error is RaftKvException or HttpRequestException or IOException or JsonException
                or OperationCanceledException or ObjectDisposedException)
            {
                // Best effort: the lease expires by itself a TTL after its last keepalive.
            }
        }
        _stop.Dispose();
        _lost.Dispose();
    }

    public override string ToString() => $"lease {Id} (TTL {TtlSeconds} s){(WhenLost.IsCompleted ? ", lost: " + WhenLost.Result.Detail : "")}";
}
