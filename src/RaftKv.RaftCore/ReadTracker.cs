namespace RaftKv.RaftCore;

/// <summary>
/// The leader's ReadIndex rounds (dissertation §6.4). Requests wait unsent until the leader may serve reads; then all
/// waiting requests share one round: the commit index is noted and a heartbeat carrying the round's number goes to every
/// follower. A follower's answer to round r also confirms every earlier round, because it proves leadership at a moment
/// after all of them began. Rounds complete in order once a quorum (the leader included) has confirmed them.
/// </summary>
internal sealed class ReadTracker(int maxPending)
{
    private readonly Queue<Round> _rounds = new();
    private List<ulong> _unsent = [];
    private List<ReadState> _completed = [];
    private ulong _lastRound;

    public int PendingCount { get; private set; }

    public bool HasUnsent => _unsent.Count > 0;

    public bool HasCompleted => _completed.Count > 0;

    /// <summary>The newest round still waiting for its quorum (0 if none): regular heartbeats carry it too.</summary>
    public ulong LastRoundSent => _rounds.Count > 0 ? _lastRound : 0;

    public void Request(ulong requestId)
    {
        Invariant.Assert(PendingCount < maxPending, "callers check the pending bound first");
        _unsent.Add(requestId);
        PendingCount++;
    }

    /// <summary>Starts a round for every unsent request at <paramref name="commitIndex"/>. Returns its number, or 0 if it completed at once.</summary>
    public ulong StartRound(LogIndex commitIndex, ClusterConfig config, NodeId self)
    {
        var round = new Round(++_lastRound, commitIndex, _unsent);
        _unsent = [];
        round.Acks.Add(self);
        if (config.HasQuorum(round.Acks.Contains))
        {
            Complete(round);
            return 0;
        }
        _rounds.Enqueue(round);
        return round.Number;
    }

    public void Acknowledge(NodeId from, ulong roundNumber, ClusterConfig config, NodeId self)
    {
        foreach (var round in _rounds)
        {
            if (round.Number > roundNumber)
            {
                break;
            }
            round.Acks.Add(from);
        }
        while (_rounds.Count > 0 && config.HasQuorum(id => id == self || _rounds.Peek().Acks.Contains(id)))
        {
            Complete(_rounds.Dequeue());
        }
    }

    /// <summary>This node stopped leading: every waiting read fails with the leader it now knows.</summary>
    public void AbortAll(NodeId leaderHint)
    {
        foreach (var id in _unsent)
        {
            _completed.Add(new ReadState(id, ReadStatus.NotLeader, LogIndex.Zero, leaderHint));
        }
        foreach (var round in _rounds)
        {
            foreach (var id in round.Requests)
            {
                _completed.Add(new ReadState(id, ReadStatus.NotLeader, LogIndex.Zero, leaderHint));
            }
        }
        _unsent = [];
        _rounds.Clear();
        PendingCount = 0;
    }

    public IReadOnlyList<ReadState> TakeCompleted()
    {
        if (_completed.Count == 0)
        {
            return [];
        }
        var completed = _completed;
        _completed = [];
        return completed;
    }

    private void Complete(Round round)
    {
        foreach (var id in round.Requests)
        {
            _completed.Add(new ReadState(id, ReadStatus.Confirmed, round.CommitIndex, NodeId.None));
        }
        PendingCount -= round.Requests.Count;
    }

    private sealed record Round(ulong Number, LogIndex CommitIndex, List<ulong> Requests)
    {
        public HashSet<NodeId> Acks { get; } = [];
    }
}
