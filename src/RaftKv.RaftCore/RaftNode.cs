namespace RaftKv.RaftCore;

/// <summary>
/// One Raft peer as a deterministic state machine (Raft paper; Ongaro's dissertation). It has no clock (it counts
/// <see cref="Tick"/>s), no threads, no I/O and no randomness but the seeded election jitter. Inputs are
/// <see cref="Step"/>, <see cref="Tick"/>, <see cref="Propose"/> and <see cref="ReadIndex"/>; the output is a
/// <see cref="Ready"/> that the caller handles and hands back through <see cref="Advance"/>. Not thread-safe:
/// one owner (the node loop) calls it.
/// </summary>
public sealed class RaftNode
{
    private readonly RaftOptions _options;
    private readonly Random _random;
    private readonly Func<NodeId, LogIndex> _matchIndexOf; // made once: MaybeCommit runs on every acknowledgement
    private readonly RaftLog _log;

    // The leader's view of every other member; empty unless leader.
    private readonly SortedDictionary<NodeId, Progress> _progress = [];

    // Votes received in the current (pre-)campaign: true granted, false refused.
    private readonly Dictionary<NodeId, bool> _votes = [];

    private readonly ReadTracker _reads;

    private List<Message> _messages = [];
    private List<Message> _messagesAfterPersist = [];

    // Followers that may have something to be sent at the next flush; null means "everyone".
    private readonly SortedSet<NodeId> _sendTo = [];
    private bool _sendToAll;

    // Followers that must get one append at the next flush even if it is empty or their window is full.
    private readonly SortedSet<NodeId> _resend = [];

    private HardState _persistedHardState;
    private SoftState _reportedSoftState;

    // A regular heartbeat is waiting in the current Ready's messages.
    private bool _heartbeatQueued;

    private int _electionElapsed;
    private int _heartbeatElapsed;
    private int _randomizedElectionTimeout;

    // Bytes of entries this leader proposed that are not yet committed (bounded by MaxUncommittedBytes).
    private long _uncommittedBytes;

    // Leadership transfer (dissertation §3.10): the follower the leader is handing over to, and for how long.
    private NodeId _transferTarget;
    private int _transferElapsed;

    public RaftNode(RaftOptions options, PersistentState state)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(state);
        var problems = options.Validate().ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentException("invalid Raft options: " + string.Join("; ", problems), nameof(options));
        }
        _options = options;
        _random = new Random(options.RandomSeed);
        _matchIndexOf = MatchIndexOf;
        // A node with no configuration was never bootstrapped: it waits to be added, and learns its configuration from the
        // leader's log or snapshot.
        _log = new RaftLog(state.BaseIndex, state.BaseTerm, state.Entries, state.HardState.Commit, state.Snapshot);
        Id = options.Id;
        Term = state.HardState.Term;
#if MUTANT_SECOND_VOTE
        // Mutant: the vote is not taken from the persisted hard state, so a node restarted in a term may vote again in it.
        Vote = NodeId.None;
#else
        Vote = state.HardState.Vote;
#endif
        if (_log.LastTerm > Term)
        {
            // Unsynced entries of a later term survived a crash while the hard state that went with them did not. We never
            // voted in that term (a vote is fsynced before it is sent), so taking it up with no vote is safe, and it keeps
            // the invariant that our term is at least our log's last term.
            Term = _log.LastTerm;
            Vote = NodeId.None;
        }
        _persistedHardState = state.HardState;
        _reads = new ReadTracker(options.MaxPendingReads);
        BecomeFollower(Term, NodeId.None);
        _reportedSoftState = SoftState;
    }

    public NodeId Id { get; }

    // Invariant: Term never decreases; Vote is set at most once per term.
    public Term Term { get; private set; }

    public NodeId Vote { get; private set; }

    public NodeId Leader { get; private set; }

    public Role Role { get; private set; }

    public LogIndex CommitIndex => _log.Committed;

    public LogIndex AppliedIndex => _log.Applied;

    public LogIndex LastIndex => _log.LastIndex;

    public Term LastTerm => _log.LastTerm;

    /// <summary>The configuration in force: the newest in the log, committed or not (dissertation §4.1). Empty while waiting to be added.</summary>
    public ClusterConfig Config => _log.Config ?? ClusterConfig.Empty;

    /// <summary>Whether the configuration in force is committed: no change is in flight.</summary>
    public bool ConfigCommitted => _log.ConfigIndex <= _log.Committed;

    public SoftState SoftState => new(Role, Term, Leader);

    public HardState HardState => new(Term, Vote, _log.Committed);

    /// <summary>The term of the entry at <paramref name="index"/>, if this node still holds it.</summary>
    public Term? TermAt(LogIndex index) => _log.TermAt(index);

    // ---------------------------------------------------------------- inputs

    /// <summary>One tick of logical time. Followers and candidates count towards an election, leaders towards a heartbeat.</summary>
    public void Tick()
    {
        if (Role == Role.Leader)
        {
            TickLeader();
        }
        else
        {
            TickElection();
        }
    }

    /// <summary>
    /// Asks the leader to append <paramref name="data"/>. Entries proposed between two Readys leave in one append per follower.
    /// A follower or candidate refuses with <see cref="ProposeStatus.NotLeader"/> and the leader it knows.
    /// </summary>
    public ProposeResult Propose(ReadOnlyMemory<byte> data) => ProposeEntry(EntryKind.Normal, data);

    /// <summary>
    /// Asks the leader to change the membership (dissertation §4.3). One change at a time: a change is refused while the
    /// configuration in force is uncommitted or joint. Learners come and go in one step; voters move through a joint
    /// configuration, which the leader leaves by itself once it commits. A learner is promoted only once it is at most
    /// <see cref="RaftOptions.MaxPromoteLagEntries"/> entries behind. Accepted means appended: it is in force at once.
    /// </summary>
    public ProposeResult ProposeConfChange(ConfChange change)
    {
        ArgumentNullException.ThrowIfNull(change);
        if (Role != Role.Leader)
        {
            return ProposeResult.NotLeader(Leader);
        }
#if !MUTANT_TWO_CONF_CHANGES
        if (!ConfigCommitted || Config.IsJoint)
        {
            return ProposeResult.Refused(ProposeStatus.Busy, Id,
                $"a configuration change is in flight ({Config}, appended at {_log.ConfigIndex.Value}, committed through {_log.Committed.Value})");
        }
#endif
        if (change.Node.IsNone)
        {
            return ProposeResult.Refused(ProposeStatus.Invalid, Id, "no node named");
        }
        var config = Config;
        ClusterConfig next;
        switch (change.Kind)
        {
            case ConfChangeKind.AddLearner when config.Contains(change.Node):
                return ProposeResult.Refused(ProposeStatus.Invalid, Id, $"{change.Node} is already a member");
            case ConfChangeKind.AddLearner:
                next = config.WithLearner(change.Node, change.Address);
                break;
            case ConfChangeKind.Promote when !config.Learners.Contains(change.Node):
                return ProposeResult.Refused(ProposeStatus.Invalid, Id,
                    config.IsVoter(change.Node) ? $"{change.Node} is already a voter" : $"{change.Node} is not a member");
            case ConfChangeKind.Promote:
                // Caught up: it answered recently and holds all but a few entries. A learner that never answered (its
                // machine is down) is never promoted, however short the log: it would only weaken the quorum.
                var lag = _progress.TryGetValue(change.Node, out var progress) ? _log.LastIndex.Value - Math.Min(progress.Match.Value, _log.LastIndex.Value) : ulong.MaxValue;
                if (progress is null || !progress.RecentActive || progress.Match == LogIndex.Zero)
                {
                    return ProposeResult.Refused(ProposeStatus.Busy, Id, $"{change.Node} has not answered this leader yet; it is promoted once it has caught up");
                }
                if (lag > (ulong)_options.MaxPromoteLagEntries)
                {
                    return ProposeResult.Refused(ProposeStatus.Busy, Id,
                        $"{change.Node} has matched {progress?.Match.Value ?? 0} of {_log.LastIndex.Value} entries; it is promoted once at most {_options.MaxPromoteLagEntries} behind");
                }
                next = config.EnterJoint(config.Voters.Add(change.Node));
                break;
            case ConfChangeKind.Remove when !config.Contains(change.Node):
                return ProposeResult.Refused(ProposeStatus.Invalid, Id, $"{change.Node} is not a member");
            case ConfChangeKind.Remove when config.Learners.Contains(change.Node):
                next = config.WithoutLearner(change.Node);
                break;
            case ConfChangeKind.Remove when config.Voters.Count == 1:
                return ProposeResult.Refused(ProposeStatus.Invalid, Id, $"{change.Node} is the last voter");
            default:
                next = config.EnterJoint(config.Voters.Remove(change.Node));
                break;
        }
        return ProposeEntry(EntryKind.Config, next.Encode());
    }

    private ProposeResult ProposeEntry(EntryKind kind, ReadOnlyMemory<byte> data)
    {
        if (Role != Role.Leader)
        {
            return ProposeResult.NotLeader(Leader);
        }
        if (!_transferTarget.IsNone)
        {
            return ProposeResult.Dropped(Id, $"leadership transfer to {_transferTarget} in progress");
        }
        var entry = new LogEntry(_log.LastIndex.Next(), Term, kind, data);
        if (_uncommittedBytes > 0 && _uncommittedBytes + entry.SizeBytes > _options.MaxUncommittedBytes)
        {
            return ProposeResult.Dropped(Id, "too many uncommitted bytes");
        }
        AppendAsLeader(entry);
        return new ProposeResult(ProposeStatus.Accepted, entry.Index, entry.Term, Id);
    }

    /// <summary>
    /// ReadIndex (dissertation §6.4): the leader notes its commit index and confirms with a quorum that it still leads;
    /// the answer comes as a <see cref="ReadState"/> in a later Ready. Requests made between two Readys share one round.
    /// Returns false with the leader it knows when this node cannot serve it (not the leader, or too many pending).
    /// </summary>
    public bool ReadIndex(ulong requestId, out NodeId leaderHint)
    {
        leaderHint = Leader;
        if (Role != Role.Leader || _reads.PendingCount >= _options.MaxPendingReads)
        {
            return false;
        }
        _reads.Request(requestId);
        return true;
    }

    /// <summary>
    /// Starts handing leadership to <paramref name="target"/>, or with <see cref="NodeId.None"/> to the most caught-up
    /// voter. Proposals are refused until it completes or times out.
    /// </summary>
    public bool TransferLeadership(NodeId target)
    {
        if (target.IsNone)
        {
            target = MostCaughtUpVoter();
        }
        if (Role != Role.Leader || target == Id || !Config.Voters.Contains(target) || !_progress.TryGetValue(target, out var progress))
        {
            return false;
        }
        _transferTarget = target;
        _transferElapsed = 0;
        if (progress.Match == _log.LastIndex)
        {
            Send(new TimeoutNow(Id, target, Term));
        }
        else
        {
            _sendTo.Add(target);
        }
        return true;
    }

    /// <summary>The voter (other than this node) with the highest match index, preferring those heard from recently.</summary>
    private NodeId MostCaughtUpVoter()
    {
        var best = NodeId.None;
        (bool Active, LogIndex Match) bestRank = default;
        foreach (var (id, progress) in _progress)
        {
            var rank = (progress.RecentActive, progress.Match);
            if (Config.Voters.Contains(id) && (best.IsNone || rank.CompareTo(bestRank) > 0))
            {
                best = id;
                bestRank = rank;
            }
        }
        return best;
    }

    /// <summary>Starts an election now (a test or an operator's nudge); a leader ignores it.</summary>
    public void Campaign()
    {
        if (Role != Role.Leader && IsPromotable)
        {
            StartCampaign(_options.PreVote, transfer: false);
        }
    }

    /// <summary>
    /// Leaves leadership (or a campaign) and becomes a follower of nobody in the same term. The loop does this when its
    /// storage failed: the node must not look like a leader while it can no longer persist anything.
    /// </summary>
    public void StepDown()
    {
        if (Role != Role.Follower || !Leader.IsNone)
        {
            BecomeFollower(Term, NodeId.None);
        }
    }

    /// <summary>The transport could not reach <paramref name="peer"/>: stop pipelining to it and probe instead.</summary>
    public void ReportUnreachable(NodeId peer)
    {
        if (Role == Role.Leader && _progress.TryGetValue(peer, out var progress) && progress.State == ReplicationState.Replicate)
        {
            progress.BecomeProbe();
        }
    }

    /// <summary>The transport finished (or failed) sending a snapshot to <paramref name="peer"/>.</summary>
    public void ReportSnapshot(NodeId peer, bool succeeded)
    {
        if (Role != Role.Leader || !_progress.TryGetValue(peer, out var progress) || progress.State != ReplicationState.Snapshot)
        {
            return;
        }
        if (!succeeded)
        {
            progress.BecomeProbe();
            _sendTo.Add(peer);
        }
        // On success wait for the follower's answer, which moves it on (HandleAppendEntriesResponse).
    }

    /// <summary>
    /// A snapshot of the applied state through <paramref name="snapshot"/>.Index was written; the log may drop entries
    /// through <paramref name="compactTo"/> (followers that still need them will get the snapshot).
    /// </summary>
    public void SnapshotTaken(SnapshotMetadata snapshot, LogIndex compactTo)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        _log.SnapshotTaken(snapshot, compactTo);
    }

    /// <summary>The metadata for a snapshot of the applied state: its last index, term and the configuration there.</summary>
    public SnapshotMetadata SnapshotMetadataAtApplied() => SnapshotMetadataAt(_log.Applied);

    /// <summary>The metadata for a snapshot of the state through <paramref name="index"/> (committed, and still in the log or at its base).</summary>
    public SnapshotMetadata SnapshotMetadataAt(LogIndex index)
    {
        Invariant.Assert(index <= _log.Committed, $"a snapshot at {index} covers only committed entries (commit {_log.Committed})");
        var term = _log.TermAt(index);
        Invariant.Assert(term is not null, $"applied index {index} is in the log");
        return new SnapshotMetadata(index, term.Value, _log.ConfigAt(index)!);
    }

    /// <summary>The newest snapshot this node holds, or null.</summary>
    public SnapshotMetadata? LatestSnapshot => _log.LatestSnapshot;

    /// <summary>Handles one message from a peer.</summary>
    public void Step(Message message)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (message.To != Id || message.From == Id)
        {
            return;
        }

        if (message.Term > Term)
        {
            if (message is RequestVote vote)
            {
                // Dissertation §4.2.3: a node that heard from a leader within the election timeout does not help depose it
                // (unless the leader itself asked, by transferring leadership).
                var inLease = _options.CheckQuorum && !Leader.IsNone && _electionElapsed < _options.ElectionTimeoutTicks;
                if (inLease && !vote.Transfer)
                {
                    return;
                }
            }
            var keepsTerm = message switch
            {
                RequestVote { PreVote: true } => true, // a PreVote probe changes nothing here
                RequestVoteResponse { PreVote: true, Granted: true } => true, // granted for a term we have not started yet
                _ => false,
            };
            if (!keepsTerm)
            {
                var leader = message is AppendEntries or Heartbeat or InstallSnapshot ? message.From : NodeId.None;
                BecomeFollower(message.Term, leader);
            }
        }
        else if (message.Term < Term)
        {
            switch (message)
            {
                case AppendEntries or Heartbeat when _options.CheckQuorum || _options.PreVote:
                    // A leader cut off from us may not know it lost: our higher term tells it. Without this, a node that
                    // raised its term in a partition could stay unable to rejoin (etcd-io/etcd#5451).
                    Send(new AppendEntriesResponse(Id, message.From, Term, false, LogIndex.Zero, LogIndex.Zero, Term.Zero));
                    break;
                case RequestVote { PreVote: true }:
                    Send(new RequestVoteResponse(Id, message.From, Term, Granted: false, PreVote: true));
                    break;
            }
            return;
        }

        switch (message)
        {
            case RequestVote vote:
                HandleRequestVote(vote);
                return;
            case RequestVoteResponse response:
                HandleRequestVoteResponse(response);
                return;
        }

        switch (Role)
        {
            case Role.Leader:
                StepLeader(message);
                break;
            case Role.Candidate or Role.PreCandidate:
                StepCandidate(message);
                break;
            default:
                StepFollower(message);
                break;
        }
    }

    private void StepLeader(Message message)
    {
        switch (message)
        {
            case AppendEntriesResponse response:
                HandleAppendEntriesResponse(response);
                break;
            case HeartbeatResponse response:
                HandleHeartbeatResponse(response);
                break;
            case AppendEntries or Heartbeat or InstallSnapshot:
                Invariant.Fail($"two leaders in term {Term}: {Id} received {message}");
                break;
        }
    }

    private void StepCandidate(Message message)
    {
        switch (message)
        {
            case AppendEntries or Heartbeat or InstallSnapshot:
                // Someone won this term (Raft §5.2): follow it.
                BecomeFollower(Term, message.From);
                StepFollower(message);
                break;
        }
    }

    private void StepFollower(Message message)
    {
        switch (message)
        {
            case AppendEntries append:
                HeardFromLeader(append.From);
                HandleAppendEntries(append);
                break;
            case Heartbeat heartbeat:
                HeardFromLeader(heartbeat.From);
                HandleHeartbeat(heartbeat);
                break;
            case InstallSnapshot snapshot:
                HeardFromLeader(snapshot.From);
                HandleInstallSnapshot(snapshot);
                break;
            case TimeoutNow when message.From == Leader && IsPromotable:
                // Dissertation §3.10: the leader hands over; campaign now, skipping PreVote.
                StartCampaign(preVote: false, transfer: true);
                break;
        }
    }

    private void HeardFromLeader(NodeId leader)
    {
        _electionElapsed = 0;
        Leader = leader;
    }

    // ---------------------------------------------------------------- elections (Raft §5.2, dissertation §9.6)

    // Dissertation §4.3: in a joint configuration the outgoing voters are voters too, and may lead. If only they hold the
    // newest entries (the leader died mid-change), nobody else can win.
    private bool IsPromotable => Config.IsVoter(Id) && _log.PendingSnapshot is null;

    // The only voter of its configuration needs nobody's vote, so there is nothing to wait for: it campaigns at its first
    // tick (a one-node cluster leads within a tick of starting, and a voter left alone by a removal takes over at once).
    private bool IsLoneVoter => !Config.IsJoint && Config.Voters.Count == 1 && Config.Voters.Contains(Id);

    private void TickElection()
    {
        _electionElapsed++;
        if (IsPromotable && (_electionElapsed >= _randomizedElectionTimeout || IsLoneVoter))
        {
            _electionElapsed = 0;
            StartCampaign(_options.PreVote, transfer: false);
        }
    }

    private void StartCampaign(bool preVote, bool transfer)
    {
        Term campaignTerm;
        if (preVote)
        {
            BecomePreCandidate();
            campaignTerm = Term.Next();
        }
        else
        {
            BecomeCandidate();
            campaignTerm = Term;
        }
        _votes[Id] = true;
        if (Config.Tally(VoteOf) == VoteOutcome.Won)
        {
            // A one-voter cluster wins at once.
            WinCampaign(preVote);
            return;
        }
        foreach (var voter in Config.Voters.Union(Config.OutgoingVoters))
        {
            if (voter != Id)
            {
                Send(new RequestVote(Id, voter, campaignTerm, _log.LastIndex, _log.LastTerm, preVote, transfer));
            }
        }
    }

    private bool? VoteOf(NodeId id) => _votes.TryGetValue(id, out var granted) ? granted : null;

    private void WinCampaign(bool preVote)
    {
        if (preVote)
        {
            StartCampaign(preVote: false, transfer: false);
        }
        else
        {
            BecomeLeader();
        }
    }

    private void HandleRequestVote(RequestVote request)
    {
        // Raft §5.2/§5.4: one vote per term, and only for a log at least as up to date as ours. A PreVote for a later term
        // is granted on the log alone: it promises nothing.
        var canVote = Vote == request.From
            || (Vote.IsNone && Leader.IsNone)
            || (request.PreVote && request.Term > Term);
        if (canVote && _log.IsUpToDate(request.LastLogIndex, request.LastLogTerm))
        {
            if (!request.PreVote)
            {
                Invariant.Assert(Vote.IsNone || Vote == request.From, $"second vote in term {Term}");
                Vote = request.From;
                _electionElapsed = 0;
            }
            Send(new RequestVoteResponse(Id, request.From, request.PreVote ? request.Term : Term, Granted: true, request.PreVote));
        }
        else
        {
            Send(new RequestVoteResponse(Id, request.From, Term, Granted: false, request.PreVote));
        }
    }

    private void HandleRequestVoteResponse(RequestVoteResponse response)
    {
        var counts = (Role == Role.PreCandidate && response.PreVote) || (Role == Role.Candidate && !response.PreVote);
        if (!counts)
        {
            return;
        }
        _votes[response.From] = response.Granted;
        switch (Config.Tally(VoteOf))
        {
            case VoteOutcome.Won:
                WinCampaign(Role == Role.PreCandidate);
                break;
            case VoteOutcome.Lost:
                BecomeFollower(Term, NodeId.None);
                break;
        }
    }

    private void BecomeFollower(Term term, NodeId leader)
    {
        Invariant.Assert(term >= Term, $"term went back from {Term} to {term}");
        if (Role == Role.Leader)
        {
            StepDownAsLeader(leader);
        }
        if (term > Term)
        {
            Term = term;
            Vote = NodeId.None;
        }
        Role = Role.Follower;
        Leader = leader;
        ResetTimers();
    }

    private void BecomePreCandidate()
    {
        Invariant.Assert(Role != Role.Leader, "a leader does not campaign");
        // A pre-candidate changes neither term nor vote (dissertation §9.6).
        Role = Role.PreCandidate;
        Leader = NodeId.None;
        _votes.Clear();
        ResetTimers();
    }

    private void BecomeCandidate()
    {
        Invariant.Assert(Role != Role.Leader, "a leader does not campaign");
        Term = Term.Next();
        Vote = Id;
        Role = Role.Candidate;
        Leader = NodeId.None;
        _votes.Clear();
        ResetTimers();
    }

    private void BecomeLeader()
    {
        Invariant.Assert(Role == Role.Candidate, $"only a candidate becomes leader, not a {Role}");
        Role = Role.Leader;
        Leader = Id;
        ResetTimers();
        _progress.Clear();
        _sendTo.Clear();
        _resend.Clear();
        foreach (var member in Config.Members)
        {
            if (member != Id)
            {
                _progress[member] = new Progress(member, _log.LastIndex.Next(), _options.MaxInflightAppends, _options.MaxInflightBytes);
            }
        }
        _uncommittedBytes = 0;
        _transferTarget = NodeId.None;
        // Raft §8: a no-op of the new term lets the leader commit (and learn the commit point of) earlier terms.
        AppendAsLeader(LogEntry.Noop(_log.LastIndex.Next(), Term));
    }

    private void StepDownAsLeader(NodeId newLeader)
    {
        _reads.AbortAll(newLeader);
        _progress.Clear();
        _sendTo.Clear();
        _resend.Clear();
        _sendToAll = false;
        _transferTarget = NodeId.None;
        _uncommittedBytes = 0;
    }

    private void ResetTimers()
    {
        _electionElapsed = 0;
        _heartbeatElapsed = 0;
        _randomizedElectionTimeout = _options.ElectionTimeoutTicks + _random.Next(_options.ElectionTimeoutTicks);
    }

    // ---------------------------------------------------------------- the leader

    private void TickLeader()
    {
        _heartbeatElapsed++;
        _electionElapsed++;
        foreach (var progress in _progress.Values)
        {
            progress.TicksSinceContact++;
            if (progress.State == ReplicationState.Snapshot && ++progress.TicksInSnapshot >= _options.SnapshotTimeoutTicks)
            {
                // The snapshot or its answer was lost: probe again, which sends a snapshot again if still needed.
                progress.BecomeProbe();
                _sendTo.Add(progress.Id);
            }
        }
        if (!_transferTarget.IsNone && ++_transferElapsed >= _options.ElectionTimeoutTicks)
        {
            _transferTarget = NodeId.None; // the target did not take over in time: lead on
        }
        if (_electionElapsed >= _options.ElectionTimeoutTicks)
        {
            _electionElapsed = 0;
            if (_options.CheckQuorum)
            {
                // Dissertation §6.2: a leader that has not heard from a quorum in an election timeout may have been deposed
                // behind a partition; it steps down rather than serve stale reads or hold clients forever.
                var quorumActive = Config.HasQuorum(id => id == Id || (_progress.TryGetValue(id, out var p) && p.RecentActive));
#if MUTANT_LEASE_AFTER_CHECKQUORUM
                // Mutant: a leader that lost touch with its quorum leads on.
                quorumActive = true;
#endif
                if (!quorumActive)
                {
                    BecomeFollower(Term, NodeId.None);
                    return;
                }
                foreach (var progress in _progress.Values)
                {
                    progress.RecentActive = false;
                }
            }
        }
        if (_heartbeatElapsed >= _options.HeartbeatIntervalTicks)
        {
            _heartbeatElapsed = 0;
            // Ticks that pile up between two Readys (a stalled loop) send one heartbeat, not a burst.
            if (!_heartbeatQueued)
            {
                _heartbeatQueued = true;
                BroadcastHeartbeat(_reads.LastRoundSent);
            }
        }
    }

    private void BroadcastHeartbeat(ulong readRound)
    {
        foreach (var progress in _progress.Values)
        {
            // Never tell a follower a commit point beyond what it is known to match.
            var commit = LogIndex.Min(progress.Match, _log.Committed);
            Send(new Heartbeat(Id, progress.Id, Term, commit, readRound));
        }
    }

    private void AppendAsLeader(LogEntry entry)
    {
        _log.Append(entry);
        _uncommittedBytes += entry.SizeBytes;
        _sendToAll = true;
        if (entry.Kind == EntryKind.Config)
        {
            // The configuration is in force once appended: new members get progress (and the log) at once. Members that
            // left keep theirs until the change commits, so that they hear of it.
            foreach (var member in Config.Members)
            {
                if (member != Id && !_progress.ContainsKey(member))
                {
                    _progress[member] = new Progress(member, _log.LastIndex, _options.MaxInflightAppends, _options.MaxInflightBytes);
                }
            }
        }
    }

    /// <summary>
    /// Once the configuration in force commits: leave a joint configuration by appending C(new) (dissertation §4.3);
    /// forget members that left; and if this leader is no longer a voter, hand off to the most caught-up voter and step down.
    /// </summary>
    private void ConfigCommittedAsLeader()
    {
        if (Role != Role.Leader || !ConfigCommitted)
        {
            return;
        }
        var config = Config;
        if (config.IsJoint)
        {
            AppendAsLeader(new LogEntry(_log.LastIndex.Next(), Term, EntryKind.Config, config.LeaveJoint().Encode()));
            return;
        }
        foreach (var id in _progress.Keys.Where(id => !config.Contains(id)).ToList())
        {
            _progress.Remove(id);
            _sendTo.Remove(id);
            _resend.Remove(id);
        }
        if (!config.Voters.Contains(Id))
        {
            var successor = MostCaughtUpVoter();
            if (!successor.IsNone && _progress[successor].Match == _log.LastIndex)
            {
                Send(new TimeoutNow(Id, successor, Term));
            }
            BecomeFollower(Term, NodeId.None);
        }
    }

    private void HandleAppendEntriesResponse(AppendEntriesResponse response)
    {
        if (!_progress.TryGetValue(response.From, out var progress))
        {
            return;
        }
        progress.RecentActive = true;
        progress.TicksSinceContact = 0;

        if (!response.Success)
        {
            // Fast back-off: if we hold entries of the follower's conflicting term, resume after our last one of that term;
            // otherwise skip the follower's whole term (or go to its last index + 1 when its log is shorter).
            var next = response.HintIndex;
            if (response.HintTerm > Term.Zero && _log.LastIndexOfTerm(response.HintTerm) is { } lastOfTerm)
            {
                next = lastOfTerm.Next();
            }
            if (progress.MaybeDecrement(response.MatchIndex, next))
            {
                if (progress.State == ReplicationState.Replicate)
                {
                    progress.BecomeProbe();
                }
                _sendTo.Add(progress.Id);
            }
            return;
        }

        var wasPaused = progress.IsPaused;
        if (progress.MaybeUpdate(response.MatchIndex))
        {
            switch (progress.State)
            {
                case ReplicationState.Probe:
                    progress.BecomeReplicate();
                    break;
                case ReplicationState.Snapshot when progress.Match >= progress.PendingSnapshot:
                    progress.BecomeProbe();
                    progress.BecomeReplicate();
                    break;
            }
            if (MaybeCommit())
            {
                _sendToAll = true;
            }
            _sendTo.Add(progress.Id);
            if (progress.Id == _transferTarget && progress.Match == _log.LastIndex)
            {
                Send(new TimeoutNow(Id, progress.Id, Term));
            }
        }
        else if (wasPaused && !progress.IsPaused)
        {
            _sendTo.Add(progress.Id); // the window opened
        }
    }

    private void HandleHeartbeatResponse(HeartbeatResponse response)
    {
        if (!_progress.TryGetValue(response.From, out var progress))
        {
            return;
        }
        progress.HeardFrom();
        if (progress.Match < _log.LastIndex)
        {
            // The follower is alive but behind. Appends or their answers may have been lost: send one more append even if
            // the window is full or it carries no entries. Either it is accepted, or it is refused and we probe back.
            _resend.Add(progress.Id);
        }
        if (response.ReadRound > 0 && Config.IsVoter(response.From))
        {
            _reads.Acknowledge(response.From, response.ReadRound, Config, Id);
        }
    }

    /// <summary>Raft §5.3 and §5.4.2: commit the highest index a quorum holds, but only by counting replicas of this term's entries.</summary>
    private bool MaybeCommit()
    {
        var quorumIndex = Config.CommittedIndex(_matchIndexOf);
#if MUTANT_OLD_TERM_COMMIT
        // Mutant (Raft Figure 8): an entry of an earlier term is committed by counting its replicas.
        if (quorumIndex <= _log.Committed)
#else
        if (quorumIndex <= _log.Committed || _log.TermAt(quorumIndex) != Term)
#endif
        {
            return false;
        }
        var from = _log.Committed.Next();
        var configWasCommitted = ConfigCommitted;
        _log.CommitTo(quorumIndex);
        if (from > _log.BaseIndex)
        {
            _uncommittedBytes = Math.Max(0, _uncommittedBytes - _log.BytesBetween(from, quorumIndex));
        }
        if (!configWasCommitted || Config.IsJoint)
        {
            ConfigCommittedAsLeader();
        }
        return true;
    }

    private LogIndex MatchIndexOf(NodeId id) =>
        id == Id ? _log.Persisted : _progress.TryGetValue(id, out var progress) ? progress.Match : LogIndex.Zero;

    private bool CommittedInCurrentTerm => _log.TermAt(_log.Committed) == Term;

    /// <summary>Appends queued for followers, or reads that may start a ReadIndex round: what <see cref="Flush"/> would send.</summary>
    private bool HasUnflushed =>
        Role == Role.Leader
        && (AppendsWaiting() || _resend.Count > 0 || (ReadIndexAllowed && _reads.HasUnsent));

    // Dissertation §6.4 step 1: a leader serves ReadIndex only once it committed an entry of its own term.
#if MUTANT_READINDEX_EARLY
    // Mutant: ReadIndex rounds start before this leader committed an entry of its own term.
    private bool ReadIndexAllowed => CommittedInCurrentTerm || Role == Role.Leader;
#else
    private bool ReadIndexAllowed => CommittedInCurrentTerm;
#endif

    private bool AppendsWaiting()
    {
        if (!_sendToAll && _sendTo.Count == 0)
        {
            return false;
        }
        foreach (var (id, progress) in _progress)
        {
            if ((_sendToAll || _sendTo.Contains(id)) && WouldSendAppend(progress))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Whether this follower is owed an append now: the test of <see cref="Flush"/>'s sending loop, and of <see cref="HasReady"/>.</summary>
    private bool WouldSendAppend(Progress progress) =>
        !progress.IsPaused && (progress.Next <= _log.LastIndex || progress.State == ReplicationState.Probe);

    /// <summary>Sends appends to every follower with something to send, and starts a ReadIndex round if reads wait.</summary>
    private void Flush()
    {
        if (Role != Role.Leader)
        {
            return;
        }
        if (_sendToAll)
        {
            _sendTo.UnionWith(_progress.Keys);
            _sendToAll = false;
        }
        if (_resend.Count > 0) // enumerating a SortedSet makes a stack, even an empty one
        {
            foreach (var id in _resend)
            {
                if (!_progress.TryGetValue(id, out var progress))
                {
                    continue; // it left the configuration
                }
                if (progress.State == ReplicationState.Replicate)
                {
                    progress.FreeFirstInflight();
                }
                if (!_sendTo.Contains(id) && !progress.IsPaused)
                {
                    MaybeSendAppend(progress);
                }
            }
            _resend.Clear();
        }
        foreach (var id in _sendTo)
        {
            if (!_progress.TryGetValue(id, out var progress))
            {
                continue;
            }
            // Pipelining: in Replicate, keep sending until the window is full or the follower has everything.
            while (WouldSendAppend(progress))
            {
                if (!MaybeSendAppend(progress))
                {
                    break;
                }
                if (progress.State != ReplicationState.Replicate)
                {
                    break;
                }
            }
        }
        _sendTo.Clear();

        // ReadIndex is served only once this leader has committed an entry of its own term (dissertation §6.4 step 1):
        // before that its commit index may lag what earlier leaders committed.
        if (ReadIndexAllowed && _reads.HasUnsent)
        {
            var round = _reads.StartRound(_log.Committed, Config, Id);
            if (round > 0)
            {
                BroadcastHeartbeat(round);
            }
        }
    }

    private bool MaybeSendAppend(Progress progress)
    {
        if (progress.IsPaused)
        {
            return false;
        }
        var prevIndex = progress.Next.Previous();
        var prevTerm = _log.TermAt(prevIndex);
        if (prevTerm is null)
        {
            // The follower needs entries we compacted: send the snapshot instead (Raft §7).
            var snapshot = _log.LatestSnapshot;
            Invariant.Assert(snapshot is not null, $"log compacted to {_log.BaseIndex} without a snapshot");
            progress.BecomeSnapshot(snapshot.Index);
            Send(new InstallSnapshot(Id, progress.Id, Term, snapshot));
            return false;
        }
        var entries = _log.Slice(progress.Next, _log.LastIndex, _options.MaxAppendBytes, out var bytes);
        Send(new AppendEntries(Id, progress.Id, Term, prevIndex, prevTerm.Value, entries, _log.Committed));
        progress.SentEntries(entries.Count > 0 ? entries[^1].Index : prevIndex, bytes);
        return true;
    }

    // ---------------------------------------------------------------- the follower

    private void HandleAppendEntries(AppendEntries append)
    {
#if !MUTANT_TRUNCATE_COMMITTED
        if (append.PrevLogIndex < _log.Committed)
        {
            // Everything up to our commit index already matches the leader: say so, and let it send from there.
            Send(new AppendEntriesResponse(Id, append.From, Term, true, _log.Committed, LogIndex.Zero, Term.Zero));
            return;
        }
#endif
        if (_log.TryAppend(append.PrevLogIndex, append.PrevLogTerm, append.Entries))
        {
            var lastNew = append.PrevLogIndex.Plus(append.Entries.Count);
            _log.CommitTo(LogIndex.Min(append.LeaderCommit, lastNew));
            Send(new AppendEntriesResponse(Id, append.From, Term, true, lastNew, LogIndex.Zero, Term.Zero));
        }
        else
        {
            var (hintIndex, hintTerm) = _log.ConflictHint(append.PrevLogIndex);
            Send(new AppendEntriesResponse(Id, append.From, Term, false, append.PrevLogIndex, hintIndex, hintTerm));
        }
    }

    private void HandleHeartbeat(Heartbeat heartbeat)
    {
        _log.CommitTo(heartbeat.Commit);
        Send(new HeartbeatResponse(Id, heartbeat.From, Term, heartbeat.ReadRound));
    }

    private void HandleInstallSnapshot(InstallSnapshot install)
    {
        var snapshot = install.Snapshot;
        if (snapshot.Index <= _log.Committed)
        {
            Send(new AppendEntriesResponse(Id, install.From, Term, true, _log.Committed, LogIndex.Zero, Term.Zero));
            return;
        }
#if MUTANT_STALE_SNAPSHOT
        // Mutant: a snapshot older than the log's last entry replaces the whole log, even entries past it that this node
        // persisted and acknowledged.
        _log.RestoreFromSnapshot(snapshot);
#else
        if (_log.Matches(snapshot.Index, snapshot.Term))
        {
            // We already hold the entries the snapshot covers: just learn that they are committed.
            _log.CommitTo(snapshot.Index);
        }
        else
        {
            _log.RestoreFromSnapshot(snapshot);
        }
#endif
        Send(new AppendEntriesResponse(Id, install.From, Term, true, _log.Committed, LogIndex.Zero, Term.Zero));
    }

    // ---------------------------------------------------------------- output

    private void Send(Message message)
    {
        // The leader's appends and heartbeats promise nothing about this node's disk, so they may leave before the fsync
        // (dissertation §10.2.1). Votes and acknowledgements promise what this node persisted: they wait for it.
        switch (message)
        {
#if MUTANT_ACK_BEFORE_FSYNC
            // Mutant: a follower acknowledges appended entries before they are persisted.
            case AppendEntries or Heartbeat or InstallSnapshot or TimeoutNow or HeartbeatResponse or AppendEntriesResponse:
#else
            case AppendEntries or Heartbeat or InstallSnapshot or TimeoutNow or HeartbeatResponse:
#endif
                _messages.Add(message);
                break;
            default:
                _messagesAfterPersist.Add(message);
                break;
        }
    }

    /// <summary>
    /// Whether <see cref="GetReady"/> has work to hand out. A pure query: it changes nothing, however often it is asked.
    /// Appends queued for followers and reads waiting for a ReadIndex round count as work; <see cref="GetReady"/> is the
    /// explicit step that turns them into messages (<see cref="Flush"/>), so proposals stepped together share one append.
    /// </summary>
    public bool HasReady
    {
        get
        {
            return _messages.Count > 0
                || _messagesAfterPersist.Count > 0
                || _log.HasUnpersisted
                || _log.PendingSnapshot is not null
                || HardState != _persistedHardState
                || _log.HasToApply
                || _reads.HasCompleted
                || SoftState != _reportedSoftState
                || HasUnflushed;
        }
    }

    /// <summary>
    /// The votes and acknowledgements still true once this Ready is persisted: those of the current term. One stepped in
    /// an earlier term of the same Ready speaks of a log that may be gone: an acknowledgement of entries of term T that a
    /// leader of a later term then replaced before they reached the disk would claim entries this node never persisted
    /// (the million-seed soak, seed 1726339: n4 acknowledged i5 to the leader of term 2 with a store ending at i2). A
    /// message not sent is a message lost, which Raft tolerates.
    /// </summary>
    private List<Message> Current(List<Message> afterPersist)
    {
        if (afterPersist.TrueForAll(m => m.Term >= Term))
        {
            return afterPersist;
        }
        return afterPersist.FindAll(m => m.Term >= Term);
    }

    /// <summary>Takes the outstanding work. It must be handled as <see cref="Ready"/> describes, then passed to <see cref="Advance"/>.</summary>
    public Ready GetReady()
    {
        Flush();
        var hardState = HardState;
        var entries = _log.Unpersisted();
        var snapshot = _log.PendingSnapshot;
        var ready = new Ready
        {
            SoftState = SoftState,
            HardState = hardState != _persistedHardState ? hardState : null,
            Entries = entries,
            Snapshot = snapshot,
            MustSync = entries.Count > 0 || snapshot is not null || hardState.Term != _persistedHardState.Term || hardState.Vote != _persistedHardState.Vote,
            Messages = _messages,
            MessagesAfterPersist = Current(_messagesAfterPersist),
            CommittedEntries = snapshot is null ? _log.ToApply(_options.MaxApplyBytesPerReady) : [],
            ReadStates = _reads.TakeCompleted(),
        };
        _messages = [];
        _messagesAfterPersist = [];
        _heartbeatQueued = false;
        _reportedSoftState = ready.SoftState;
        return ready;
    }

    /// <summary>The caller handled <paramref name="ready"/>: what it persisted is durable and what it applied is applied.</summary>
    public void Advance(Ready ready)
    {
        ArgumentNullException.ThrowIfNull(ready);
        if (ready.Snapshot is not null)
        {
            _log.SnapshotInstalled(ready.Snapshot);
        }
        if (ready.HardState is { } hardState)
        {
            _persistedHardState = hardState;
        }
        if (ready.Entries.Count > 0)
        {
            var last = ready.Entries[^1];
            _log.PersistedTo(last.Index, last.Term);
            // The leader counts itself towards a quorum only for entries on its own disk.
            if (Role == Role.Leader && MaybeCommit())
            {
                _sendToAll = true;
            }
        }
        if (ready.CommittedEntries.Count > 0)
        {
            _log.AppliedTo(ready.CommittedEntries[^1].Index);
        }
    }

    public RaftStatus Status()
    {
        var peers = _progress.Values
            .Select(p => new PeerStatus(p.Id, p.State, p.Match, p.Next, p.TicksSinceContact, p.RecentActive))
            .ToList();
        return new RaftStatus(Id, Role, Term, Vote, Leader, _log.Committed, _log.Applied, _log.Persisted, _log.LastIndex, _log.LastTerm,
            _log.FirstIndex, _log.LatestSnapshot?.Index ?? LogIndex.Zero, Config, peers) { ConfigCommitted = ConfigCommitted };
    }

    /// <summary>Entries from <paramref name="from"/> through <paramref name="through"/> that this node still holds (for checkers and tools).</summary>
    public IReadOnlyList<LogEntry> Entries(LogIndex from, LogIndex through) =>
        _log.Slice(LogIndex.Max(from, _log.FirstIndex), through, long.MaxValue);
}
