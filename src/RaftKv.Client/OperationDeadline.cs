namespace RaftKv.Client;

/// <summary>
/// The time one client operation may take, retries included (<see cref="RaftKvClientOptions.Timeout"/>), kept as a
/// time rather than a timer: each attempt gets one cancellation source, due at the sooner of its own timeout and what is
/// left of the operation's. A source for the whole operation is made only when a retry's wait or a leader lookup needs
/// one, so an operation answered at its first attempt costs one timer.
/// </summary>
internal sealed class OperationDeadline(TimeSpan timeout, CancellationToken caller) : IDisposable
{
    private readonly long _started = System.Diagnostics.Stopwatch.GetTimestamp();
    private CancellationTokenSource? _whole;

    /// <summary>What is left of the operation's time: zero when it has run out, infinite for an infinite timeout.</summary>
    public TimeSpan Left => timeout == Timeout.InfiniteTimeSpan ? timeout
        : TimeSpan.FromTicks(Math.Max(0, (timeout - System.Diagnostics.Stopwatch.GetElapsedTime(_started)).Ticks));

    public bool IsOver => Left == TimeSpan.Zero;

    /// <summary>Cancelled when the operation's time runs out or the caller cancels.</summary>
    public CancellationToken Overall
    {
        get
        {
            if (_whole is null)
            {
                _whole = CancellationTokenSource.CreateLinkedTokenSource(caller);
                _whole.CancelAfter(Left);
            }
            return _whole.Token;
        }
    }

    /// <summary>A source for one attempt: cancelled after <paramref name="attemptTimeout"/> or when the operation's time runs out.</summary>
    public CancellationTokenSource StartAttempt(TimeSpan attemptTimeout)
    {
        var attempt = CancellationTokenSource.CreateLinkedTokenSource(caller);
        var left = Left;
        attempt.CancelAfter(attemptTimeout == Timeout.InfiniteTimeSpan ? left
            : left == Timeout.InfiniteTimeSpan || attemptTimeout < left ? attemptTimeout : left);
        return attempt;
    }

    public void Dispose() => _whole?.Dispose();
}
