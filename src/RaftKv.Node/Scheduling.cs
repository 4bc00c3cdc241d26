using RaftKv.RaftCore;

namespace RaftKv.Node;

/// <summary>Where the loop runs work that must not block it (writing a snapshot). The simulator runs it at a simulated time.</summary>
public interface IWorkScheduler
{
    void Run(Action work);
}

public sealed class ThreadPoolWorkScheduler : IWorkScheduler
{
    public static readonly ThreadPoolWorkScheduler Instance = new();

    private ThreadPoolWorkScheduler()
    {
    }

    public void Run(Action work) => _ = Task.Run(work);
}

/// <summary>What the loop reports for metrics. Called on the loop; implementations must be cheap and must not block.</summary>
public interface IRaftLoopObserver
{
    void Persisted(int entryCount, TimeSpan syncDuration);

    void Applied(int entryCount, LogIndex appliedIndex, TimeSpan duration);

    /// <summary>One of this node's proposals committed: the time from proposing it to seeing it committed (replication).</summary>
    void ProposalCommitted(TimeSpan sinceProposed);

    void RoleChanged(SoftState state);

    void SnapshotTaken(SnapshotMetadata metadata, TimeSpan duration);

    void StorageFailed(string reason);

    /// <summary>The configuration in force changed (appended, cut, or installed with a snapshot): the transport may need new addresses.</summary>
    void ConfigChanged(ClusterConfig config);
}

public sealed class NullRaftLoopObserver : IRaftLoopObserver
{
    public static readonly NullRaftLoopObserver Instance = new();

    private NullRaftLoopObserver()
    {
    }

    public void Persisted(int entryCount, TimeSpan syncDuration)
    {
    }

    public void Applied(int entryCount, LogIndex appliedIndex, TimeSpan duration)
    {
    }

    public void ConfigChanged(ClusterConfig config)
    {
    }

    public void ProposalCommitted(TimeSpan sinceProposed)
    {
    }

    public void RoleChanged(SoftState state)
    {
    }

    public void SnapshotTaken(SnapshotMetadata metadata, TimeSpan duration)
    {
    }

    public void StorageFailed(string reason)
    {
    }
}

/// <summary>
/// Turns wall-clock time from a <see cref="TimeProvider"/> into the loop's ticks. A timer that wakes late coalesces the
/// ticks it missed, so the ticker counts elapsed time instead of wake-ups: a busy thread pool must not stretch the
/// election timeout.
/// </summary>
public static class Ticker
{
    public static async Task RunAsync(RaftLoop loop, TimeSpan interval, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(loop);
        ArgumentNullException.ThrowIfNull(time);
        using var timer = new PeriodicTimer(interval, time);
        var step = (long)(interval.Ticks * (time.TimestampFrequency / (double)TimeSpan.TicksPerSecond));
        var next = time.GetTimestamp() + step;
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
            {
                // One tick for every interval that has passed, however late this wake-up is.
                var now = time.GetTimestamp();
                while (now >= next)
                {
                    loop.Tick();
                    next += step;
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }
}
