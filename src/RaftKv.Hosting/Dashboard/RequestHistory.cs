using RaftKv.RaftCore;

namespace RaftKv.Hosting.Dashboard;

/// <summary>
/// What the dashboard draws from this node's own counters: for each of the last <see cref="Seconds"/> seconds, the client
/// requests this node answered (reads are GETs, writes everything else) and their 99th-percentile time; and the last
/// leader changes it saw. Bounded: a ring of one slot per second, and of <see cref="MaxLeaderChanges"/> changes.
/// </summary>
internal sealed class RequestHistory(TimeProvider time)
{
    public const int Seconds = 300;

    public const int MaxLeaderChanges = 50;

    // Latency buckets: bucket b holds times below 2^b × 50 µs (b = 0 … 19, the last one open-ended: 26 s and more).
    private const int Buckets = 20;
    private const double FirstBucketMs = 0.05;

    private readonly Lock _lock = new();
    private readonly Slot[] _slots = Enumerable.Range(0, Seconds).Select(_ => new Slot()).ToArray();
    private readonly Queue<LeaderChange> _leaderChanges = new();

    public readonly record struct Second(long UnixSeconds, int Writes, int Reads, double? P99Ms);

    public readonly record struct LeaderChange(long AtUnixMs, NodeId Leader, Term Term);

    private sealed class Slot
    {
        public long UnixSeconds = -1;
        public int Writes;
        public int Reads;
        public readonly int[] Latency = new int[Buckets];
    }

    /// <summary>One client request this node answered, and how long it took.</summary>
    public void Record(bool write, TimeSpan elapsed)
    {
        var now = time.GetUtcNow().ToUnixTimeSeconds();
        var bucket = BucketOf(elapsed.TotalMilliseconds);
        lock (_lock)
        {
            var slot = _slots[now % Seconds];
            if (slot.UnixSeconds != now)
            {
                slot.UnixSeconds = now;
                slot.Writes = 0;
                slot.Reads = 0;
                Array.Clear(slot.Latency);
            }
            if (write)
            {
                slot.Writes++;
            }
            else
            {
                slot.Reads++;
            }
            slot.Latency[bucket]++;
        }
    }

    public void LeaderChanged(NodeId leader, Term term)
    {
        lock (_lock)
        {
            _leaderChanges.Enqueue(new LeaderChange(time.GetUtcNow().ToUnixTimeMilliseconds(), leader, term));
            while (_leaderChanges.Count > MaxLeaderChanges)
            {
                _leaderChanges.Dequeue();
            }
        }
    }

    /// <summary>The last <paramref name="count"/> complete seconds, oldest first (seconds without a request count zero).</summary>
    public IReadOnlyList<Second> Last(int count)
    {
        count = Math.Clamp(count, 1, Seconds - 1);
        var now = time.GetUtcNow().ToUnixTimeSeconds();
        var seconds = new List<Second>(count);
        lock (_lock)
        {
            for (var t = now - count; t < now; t++)
            {
                var slot = _slots[t % Seconds];
                seconds.Add(slot.UnixSeconds == t ? new Second(t, slot.Writes, slot.Reads, P99(slot.Latency)) : new Second(t, 0, 0, null));
            }
        }
        return seconds;
    }

    public IReadOnlyList<LeaderChange> LeaderChanges()
    {
        lock (_lock)
        {
            return [.. _leaderChanges];
        }
    }

    private static int BucketOf(double ms)
    {
        var bucket = 0;
        var bound = FirstBucketMs;
        while (ms >= bound && bucket < Buckets - 1)
        {
            bound *= 2;
            bucket++;
        }
        return bucket;
    }

    /// <summary>The upper bound of the bucket that holds the 99th percentile (so at most a factor of 2 high).</summary>
    private static double? P99(int[] latency)
    {
        var total = latency.Sum();
        if (total == 0)
        {
            return null;
        }
        var rank = (int)Math.Ceiling(total * 0.99);
        var seen = 0;
        for (var b = 0; b < Buckets; b++)
        {
            seen += latency[b];
            if (seen >= rank)
            {
                return FirstBucketMs * Math.Pow(2, b);
            }
        }
        return FirstBucketMs * Math.Pow(2, Buckets - 1);
    }
}
