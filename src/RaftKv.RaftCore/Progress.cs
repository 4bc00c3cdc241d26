namespace RaftKv.RaftCore;

/// <summary>How the leader replicates to one follower (see docs/architecture.md, "Progress").</summary>
public enum ReplicationState
{
    /// <summary>The leader does not know where the follower's log matches: one append at a time, then wait.</summary>
    Probe,

    /// <summary>The logs match up to <see cref="Progress.Match"/>: appends are pipelined within the in-flight window.</summary>
    Replicate,

    /// <summary>The follower needs entries the leader compacted: a snapshot is on its way.</summary>
    Snapshot,
}

/// <summary>The leader's view of one follower (Raft §5.3 nextIndex/matchIndex, with etcd's probe/replicate states).</summary>
public sealed class Progress
{
    private readonly Inflights _inflights;

    internal Progress(NodeId id, LogIndex next, int maxInflightCount, long maxInflightBytes)
    {
        Id = id;
        Next = next;
        _inflights = new Inflights(maxInflightCount, maxInflightBytes);
    }

    public NodeId Id { get; }

    // Invariant: Match < Next.
    public LogIndex Match { get; private set; }

    public LogIndex Next { get; private set; }

    public ReplicationState State { get; private set; } = ReplicationState.Probe;

    /// <summary>In Probe, an append was sent and the leader waits for its answer (or the next heartbeat's).</summary>
    public bool ProbeSent { get; private set; }

    /// <summary>In Snapshot, the index of the snapshot being sent.</summary>
    public LogIndex PendingSnapshot { get; private set; }

    /// <summary>Heard from since the last CheckQuorum round.</summary>
    public bool RecentActive { get; set; }

    /// <summary>Ticks since this follower last answered (for /status).</summary>
    public int TicksSinceContact { get; internal set; }

    internal int TicksInSnapshot { get; set; }

    public int InflightCount => _inflights.Count;

    public long InflightBytes => _inflights.Bytes;

    /// <summary>Whether the leader may send this follower another append now.</summary>
    public bool IsPaused => State switch
    {
        ReplicationState.Probe => ProbeSent,
        ReplicationState.Replicate => _inflights.IsFull,
        _ => true,
    };

    internal void BecomeProbe()
    {
        // Leaving Snapshot, the follower holds at least the snapshot: start probing right after it.
        Next = State == ReplicationState.Snapshot ? LogIndex.Max(Match.Next(), PendingSnapshot.Next()) : Match.Next();
        Reset(ReplicationState.Probe);
    }

    internal void BecomeReplicate()
    {
        Next = Match.Next();
        Reset(ReplicationState.Replicate);
    }

    internal void BecomeSnapshot(LogIndex snapshotIndex)
    {
        Reset(ReplicationState.Snapshot);
        PendingSnapshot = snapshotIndex;
    }

    private void Reset(ReplicationState state)
    {
        State = state;
        ProbeSent = false;
        PendingSnapshot = LogIndex.Zero;
        TicksInSnapshot = 0;
        _inflights.Clear();
    }

    /// <summary>An append of entries up to <paramref name="last"/> (of <paramref name="bytes"/>) was sent.</summary>
    internal void SentEntries(LogIndex last, long bytes)
    {
        switch (State)
        {
            case ReplicationState.Replicate:
                if (last >= Next)
                {
                    Next = last.Next();
                    _inflights.Add(last, bytes);
                }
                break;
            case ReplicationState.Probe:
                ProbeSent = true;
                break;
            default:
                Invariant.Fail($"sending entries to {Id} in state {State}");
                break;
        }
    }

    /// <summary>The follower matches through <paramref name="index"/>. Returns false if that is old news.</summary>
    internal bool MaybeUpdate(LogIndex index)
    {
        var updated = false;
        if (index > Match)
        {
            Match = index;
            updated = true;
            ProbeSent = false;
        }
        Next = LogIndex.Max(Next, index.Next());
        _inflights.FreeThrough(index);
        return updated;
    }

    /// <summary>
    /// The follower refused an append after <paramref name="rejectedPrev"/>; move Next back to <paramref name="next"/>.
    /// Returns false for a stale refusal (of an append that is no longer the one that matters).
    /// </summary>
    internal bool MaybeDecrement(LogIndex rejectedPrev, LogIndex next)
    {
        if (State == ReplicationState.Replicate)
        {
            // In Replicate, Next ran ahead; a refusal at or below Match is stale.
            if (rejectedPrev <= Match)
            {
                return false;
            }
            Next = LogIndex.Max(Match.Next(), LogIndex.Min(next, rejectedPrev));
            return true;
        }
        // In Probe only the refusal of the probe we sent (at Next - 1) counts.
        if (Next.Previous() != rejectedPrev)
        {
            return false;
        }
        Next = LogIndex.Max(Match.Next(), LogIndex.Min(next, rejectedPrev));
        ProbeSent = false;
        return true;
    }

    /// <summary>Frees the oldest in-flight append: the follower answered a heartbeat, so a full window may hold lost appends.</summary>
    internal void FreeFirstInflight() => _inflights.FreeFirst();

    /// <summary>A heartbeat answer shows the follower is alive: a paused probe may go again.</summary>
    internal void HeardFrom()
    {
        RecentActive = true;
        TicksSinceContact = 0;
        if (State == ReplicationState.Probe)
        {
            ProbeSent = false;
        }
    }

    public override string ToString() =>
        $"{Id} {State} match={Match.Value} next={Next.Value}" + (State == ReplicationState.Snapshot ? $" snapshot={PendingSnapshot.Value}" : "");

    /// <summary>A bounded window of appends in flight to one follower, by count and by bytes.</summary>
    private sealed class Inflights(int maxCount, long maxBytes)
    {
        private readonly Queue<(LogIndex Last, long Bytes)> _queue = new();

        public int Count => _queue.Count;

        public long Bytes { get; private set; }

        public bool IsFull => _queue.Count >= maxCount || Bytes >= maxBytes;

        public void Add(LogIndex last, long bytes)
        {
            _queue.Enqueue((last, bytes));
            Bytes += bytes;
        }

        public void FreeThrough(LogIndex index)
        {
            while (_queue.Count > 0 && _queue.Peek().Last <= index)
            {
                Bytes -= _queue.Dequeue().Bytes;
            }
        }

        public void FreeFirst()
        {
            if (_queue.Count > 0)
            {
                Bytes -= _queue.Dequeue().Bytes;
            }
        }

        public void Clear()
        {
            _queue.Clear();
            Bytes = 0;
        }
    }
}
