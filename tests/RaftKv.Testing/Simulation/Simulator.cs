using System.Globalization;
using System.IO.Hashing;
using System.Text;
using RaftKv.Node;
using RaftKv.RaftCore;
using RaftKv.Storage;

namespace RaftKv.Testing.Simulation;

/// <summary>
/// A whole cluster in one thread: N nodes running the real <see cref="RaftLoop"/> and <see cref="RaftNode"/> on in-memory
/// disks, a simulated network, a virtual clock, concurrent clients and seeded faults. One seed decides everything.
/// After every step of every node it runs the <see cref="SafetyChecker"/>; at the end it heals every fault, waits for the
/// cluster to converge, and checks that every acknowledged write is applied on every member and that no read was stale.
/// Slots beyond <see cref="SimulationOptions.NodeCount"/> hold spares: a spare is started (on an empty disk, with no
/// configuration) only when it is about to be added, and a node whose removal committed is retired: stopped for good.
/// </summary>
public sealed class Simulator
{
    private const int ClientTimeoutMs = 1_000;

    // RaftOptions' default: a learner that is at most this far behind may be promoted.
    private const int DefaultMaxPromoteLagEntries = 1_000;

    private readonly SimulationOptions _options;
    private readonly Random _random;
    private readonly PriorityQueue<Action, (long Time, long Sequence)> _events = new();
    private readonly SimNode[] _nodes;
    private readonly SafetyChecker _checker = new();
    private readonly CheckQuorumChecker _contact;
    private readonly List<SimClient> _clients = [];
    private readonly List<string> _trace = [];
    private readonly XxHash64 _traceHash = new();
    private readonly Dictionary<FaultKinds, int> _faultCounts = [];
    private readonly Dictionary<MembershipMove, int> _membershipChanges = [];
    private readonly Dictionary<BuggifyPoint, int> _buggifyFired = [];
    private readonly List<PendingChange> _changes = [];
    private readonly HashSet<(NodeId From, NodeId To)> _cutLinks = [];
    private readonly List<(LogIndex Index, string Data)> _acknowledged = [];
    private readonly Dictionary<string, int> _delivered = [];
    private bool _writeOnly;
    private readonly ClusterConfig _config;
    private readonly NodeLoopOptions _loopOptions;
    private readonly StorageOptions _storageOptions;

    private long _now;
    private long _sequence;
    private long _eventCount;
    private long _messagesSent;
    private long _maxAcknowledgedIndex;
    private int _reads;
    private int _partitionGeneration;

    // While a targeted schedule (LeaderSwap) runs, it owns the cluster: no other fault is injected (a random partition
    // would heal its cuts, a crash would take down the leaders it waits for). The network's loss and delays go on.
    private long _scheduleOwnsClusterUntil;
    private int _scriptedClients;
    private bool _faultsActive = true;
    private bool _clientsActive = true;

    // The fault profile, drawn from the seed: which kinds, how often each (swarm testing), the network's rates.
    private readonly FaultKinds _faults;
    private readonly Dictionary<FaultKinds, int> _faultWeights = [];
    private readonly double _dropRate;
    private readonly double _duplicateRate;
    private readonly double _spikeRate;
    private readonly bool _oneEntryPerAppend;
    private readonly int _maxPromoteLagEntries;
    private readonly int _buggifyOneIn;

    public Simulator(SimulationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _random = new Random(options.Seed);
        _nodes = [.. Enumerable.Range(1, options.NodeCount + options.SpareNodeCount).Select(i => new SimNode(new NodeId((ulong)i), isSpare: i > options.NodeCount))];
        _config = ClusterConfig.Create(_nodes.Where(n => !n.IsSpare).Select(n => n.Id));
        _contact = CheckQuorumChecker.For(options.ElectionTimeoutTicks, options.TickMs);
        _faults = options.Faults;
        var rateScale = 1.0;
        if (options.Swarm)
        {
            foreach (var kind in Enum.GetValues<FaultKinds>().Where(k => k is not (FaultKinds.None or FaultKinds.All)))
            {
                if (_random.Next(2) == 0)
                {
                    _faults &= ~kind;
                }
                _faultWeights[kind] = _random.Next(1, 5);
            }
            rateScale = 2.0;
        }
        _dropRate = Has(FaultKinds.Drop) ? _random.NextDouble() * 0.15 * rateScale : 0;
        _duplicateRate = Has(FaultKinds.Duplicate) ? _random.NextDouble() * 0.05 * rateScale : 0;
        _spikeRate = Has(FaultKinds.Reorder) ? _random.NextDouble() * 0.10 * rateScale : 0;
        // A third of the seeds (half of swarm seeds) send one entry per append, so that the entries of one batch can
        // arrive apart: a new leader's no-op then travels apart from the older entries before it.
        _oneEntryPerAppend = _random.Next(options.Swarm ? 2 : 3) == 0;
        _oneEntryPerAppend = options.OneEntryPerAppend ?? _oneEntryPerAppend;
        // Small snapshot thresholds, so that compaction and InstallSnapshot happen in most runs.
        _loopOptions = new NodeLoopOptions
        {
            SnapshotThresholdEntries = _random.Next(20, 200),
            SnapshotKeepEntries = _random.Next(0, 40),
            MaxBatchInputs = _random.Next(1, 64),
            // The thresholds alone: snapshots as often as they come (the share only spaces out snapshots of a large state).
            SnapshotMinAppliedShare = 0,
        };
        _loopOptions = _loopOptions with
        {
            SnapshotThresholdEntries = options.SnapshotThresholdEntries ?? _loopOptions.SnapshotThresholdEntries,
            SnapshotKeepEntries = options.SnapshotKeepEntries ?? _loopOptions.SnapshotKeepEntries,
        };
        // Small segments, so that segments roll and compaction deletes them.
        // Odd seeds preallocate every segment (zeros up to SegmentBytes, overwritten in place), even seeds let them grow: both
        // recovery paths under crashes. Preallocated inline, since this disk is not thread-safe. (Not drawn: the sequence of
        // draws stays what it was.)
        _storageOptions = new StorageOptions
        {
            SegmentBytes = _random.Next(4_096, 65_536),
            SnapshotsToKeep = 2,
            Preallocation = options.Seed % 2 != 0 ? SegmentPreallocation.Inline : SegmentPreallocation.None,
        };
        // Half the seeds that change membership promote a learner only once it is nearly caught up, so that promotions are
        // refused (Busy) as well. (Drawn only then: runs without membership changes keep their sequence of draws.)
        _maxPromoteLagEntries = Has(FaultKinds.Membership) && _random.Next(2) == 0 ? _random.Next(2, 40) : DefaultMaxPromoteLagEntries;
        // A buggify point fires at one step in this many (drawn only then, as above). Every point is on in every seed that
        // draws Buggify: turning each on in half of them instead (as FoundationDB does with its BUGGIFY sites) halved the
        // seeds of 2,000 that reach MUTANT_STALE_SNAPSHOT's path (14 against 28), which early snapshots open.
        _buggifyOneIn = Has(FaultKinds.Buggify) ? _random.Next(5, 100) : 0;
    }

    public long Now => _now;

    public SimulationResult Run()
    {
        try
        {
            Trace("profile: " + Profile);
            foreach (var node in _nodes.Where(n => !n.IsSpare))
            {
                StartNode(node);
            }
            for (var i = 0; i < _options.Clients; i++)
            {
                var client = new SimClient(i + 1);
                _clients.Add(client);
                At(_random.Next(50), () => StartOperation(client));
            }
            ScheduleFaults();
            RunUntil(_options.FaultPhaseMs);

            HealEverything();
            var deadline = _options.FaultPhaseMs + _options.ConvergeWithinMs;
            SimNode? leader;
            while ((leader = ConvergedLeader()) is null)
            {
                if (_now >= deadline)
                {
                    throw new SafetyViolationException($"liveness: the cluster did not converge within {_options.ConvergeWithinMs} ms of healing. {DescribeNodes()}");
                }
                RunUntil(_now + 20);
            }
            CheckFinalState(leader);
            return new SimulationResult(_options.Seed, _options.NodeCount, _eventCount, _messagesSent, _acknowledged.Count, _reads,
                _checker.LeadersElected, _checker.AppliedEntries, new Dictionary<FaultKinds, int>(_faultCounts), _trace,
                _traceHash.GetCurrentHashAsUInt64(), _nodes.Max(n => n.Snapshots?.All.Count ?? 0))
            {
                MembershipChanges = new Dictionary<MembershipMove, int>(_membershipChanges),
                BuggifyFired = new Dictionary<BuggifyPoint, int>(_buggifyFired),
            };
        }
        catch (Exception e) when (e is SafetyViolationException or InvariantViolationException)
        {
            var tail = _trace.Count > 0 ? "\nlast events:\n  " + string.Join("\n  ", _trace.TakeLast(40)) : "";
            throw new SimulationFailureException(
                $"seed {_options.Seed} ({_options.NodeCount} nodes) failed at {_now} ms: {e.Message}\nprofile: {Profile}\nreplay: {_options.ReplayCommand}{tail}", e)
            {
                Trace = _trace,
            };
        }
    }

    private bool Has(FaultKinds kind) => (_faults & kind) != 0;

    /// <summary>Nodes that faults and clients may pick: started, and not retired.</summary>
    private IEnumerable<SimNode> Live => _nodes.Where(n => n.Started && !n.Retired);

    /// <summary>The node leading now (up, not retired, storage working), if any.</summary>
    private SimNode? CurrentLeader => _nodes.FirstOrDefault(n => n.Up && !n.Retired && n.Raft!.Role == Role.Leader && n.Loop!.StorageFailure is null);

    /// <summary>The fault profile this seed drew, for failure reports.</summary>
    public string Profile => string.Create(CultureInfo.InvariantCulture,
        $"faults {(_faults == FaultKinds.None ? "none" : string.Join('+', Enum.GetValues<FaultKinds>().Where(k => k is not (FaultKinds.None or FaultKinds.All) && Has(k)).Select(k => _faultWeights.TryGetValue(k, out var w) ? $"{k}x{w}" : k.ToString())))}, " +
        $"drop {_dropRate:P0}, dup {_duplicateRate:P0}, spikes {_spikeRate:P0}{(_oneEntryPerAppend ? ", one entry per append" : "")}{(_buggifyOneIn > 0 ? $", buggify 1 in {_buggifyOneIn}" : "")}");

    // ---------------------------------------------------------------- scripted use (targeted tests on the same machinery)

    /// <summary>Starts every node with its ticks, and no clients or faults: the script drives the rest.</summary>
    public void StartScripted()
    {
        _faultsActive = false;
        _clientsActive = false;
        foreach (var node in _nodes.Where(n => !n.IsSpare))
        {
            StartNode(node);
        }
    }

    public void RunFor(int milliseconds) => Checked(() => RunUntil(_now + milliseconds));

    public void CrashNode(int id) => Checked(() => Crash(_nodes[id - 1], "stopped by the script"));

    public void RestartNode(int id) => Checked(() => Restart(_nodes[id - 1]));

    public RaftStatus? Status(int id) => _nodes[id - 1].Up ? _nodes[id - 1].Raft!.Status() : null;

    public int Delivered(string messageType) => _delivered.GetValueOrDefault(messageType);

    /// <summary>The next fsync on this node's disk fails with EIO.</summary>
    public void FailNextFsync(int id) => _nodes[id - 1].Disk.FailNextSync = true;

    public string? StorageFailure(int id) => _nodes[id - 1].Loop?.StorageFailure;

    public int? LeaderId => CurrentLeader is { } leader ? (int)leader.Id.Value : null;

    /// <summary>Starts the next spare never started (an empty disk, no configuration: it waits to be added) and returns its id.</summary>
    public int StartSpare()
    {
        var spare = _nodes.First(n => n.IsSpare && !n.Started);
        Checked(() => StartNode(spare));
        return (int)spare.Id.Value;
    }

    /// <summary>
    /// Asks the leader's loop for <paramref name="change"/> and runs until it answers; fails if no node leads or no answer
    /// comes within <paramref name="withinMs"/>. A node whose removal applied is retired, as in seeded runs.
    /// </summary>
    public ProposalOutcome ChangeMembership(ConfChange change, int withinMs)
    {
        ArgumentNullException.ThrowIfNull(change);
        ProposalOutcome? outcome = null;
        Checked(() =>
        {
            var deadline = _now + withinMs;
            var leader = CurrentLeader;
            while (leader is null && _now < deadline)
            {
                RunUntil(_now + 10);
                leader = CurrentLeader;
            }
            if (leader is null)
            {
                throw new SafetyViolationException($"liveness: no leader to ask for '{change}' within {withinMs} ms. {DescribeNodes()}");
            }
            var move = change.Kind switch
            {
                ConfChangeKind.AddLearner => MembershipMove.AddLearner,
                ConfChangeKind.Promote => MembershipMove.Promote,
                _ when change.Node == leader.Id => MembershipMove.RemoveLeader,
                _ when leader.Raft!.Config.Learners.Contains(change.Node) => MembershipMove.RemoveLearner,
                _ => MembershipMove.RemoveFollower,
            };
            var pending = PostChange(leader, move, change);
            while (pending.Outcome is null && _now < deadline)
            {
                RunUntil(_now + 10);
            }
            outcome = pending.Outcome ?? throw new SafetyViolationException($"liveness: '{change}' got no answer from {leader.Id} within {withinMs} ms. {DescribeNodes()}");
        });
        return outcome!;
    }

    /// <summary>Whether the node was retired: its removal committed and it was stopped for good.</summary>
    public bool IsRetired(int id) => _nodes[id - 1].Retired;

    /// <summary>Membership changes applied so far, by kind.</summary>
    public IReadOnlyDictionary<MembershipMove, int> MembershipChanges => _membershipChanges;

    /// <summary>Writes until <paramref name="count"/> writes were acknowledged, from <paramref name="concurrency"/> clients at once.</summary>
    public void Write(int count, int concurrency, int withinMs)
    {
        Checked(() =>
        {
            _writeOnly = true;
            _clientsActive = true;
            _clients.Clear();
            for (var i = 0; i < concurrency; i++)
            {
                // Ids differ from one call to the next, so that no two writes carry the same data.
                var client = new SimClient(1_000 + _scriptedClients++);
                _clients.Add(client);
                At(0, () => StartOperation(client));
            }
            var deadline = _now + withinMs;
            while (_acknowledged.Count < count && _now < deadline)
            {
                RunUntil(_now + 10);
            }
            _clientsActive = false;
            while (_clients.Any(c => c.Current is not null) && _now < deadline + ClientTimeoutMs)
            {
                RunUntil(_now + 10);
            }
            if (_acknowledged.Count < count)
            {
                throw new SafetyViolationException($"liveness: only {_acknowledged.Count} of {count} writes acknowledged within {withinMs} ms");
            }
        });
    }

    /// <summary>Runs until every node converged (or fails after <paramref name="withinMs"/>), then checks the final state.</summary>
    public void Converge(int withinMs)
    {
        Checked(() =>
        {
            var deadline = _now + withinMs;
            SimNode? leader;
            while ((leader = ConvergedLeader()) is null)
            {
                if (_now >= deadline)
                {
                    throw new SafetyViolationException($"liveness: no convergence within {withinMs} ms. {DescribeNodes()}");
                }
                RunUntil(_now + 20);
            }
            CheckFinalState(leader);
        });
    }

    public int AcknowledgedWrites => _acknowledged.Count;

    private void Checked(Action action)
    {
        try
        {
            action();
        }
        catch (Exception e) when (e is SafetyViolationException or InvariantViolationException)
        {
            throw new SimulationFailureException($"seed {_options.Seed} failed at {_now} ms: {e.Message}", e) { Trace = _trace };
        }
    }

    // ---------------------------------------------------------------- the event loop

    private void At(long delayMs, Action action) => _events.Enqueue(action, (_now + Math.Max(0, delayMs), _sequence++));

    private void RunUntil(long time)
    {
        while (_events.TryPeek(out _, out var key) && key.Time <= time)
        {
            var action = _events.Dequeue();
            _now = key.Time;
            _eventCount++;
            action();
        }
        _now = Math.Max(_now, time);
    }

    private void Trace(string text)
    {
        _traceHash.Append(Encoding.UTF8.GetBytes(text));
        if (_options.RecordTrace)
        {
            _trace.Add(_now.ToString(CultureInfo.InvariantCulture).PadLeft(6) + " " + text);
        }
    }

    // ---------------------------------------------------------------- nodes

    private void StartNode(SimNode node)
    {
        Invariant.Assert(!node.Retired, "a retired node is never started again");
        node.Incarnation++;
        node.Up = true;
        node.StorageFailed = false;
        if (node.FlipBitOnRestart)
        {
            node.FlipBitOnRestart = false;
            FlipBitAndExpectRefusal(node);
        }
        var log = new WalLogStore(node.Disk, _storageOptions);
        var snapshots = new FileSnapshotStore(node.Disk, _storageOptions);
        // Only the bootstrap nodes start from the bootstrap configuration; a spare starts empty and waits to be added.
        var state = StartupState.Load(log, snapshots, node.IsSpare ? null : _config);
        node.Snapshots = snapshots;
        _checker.NodeLoaded(node.Id, state);
        _contact.Started(node.Id);
        var store = new ObservedLogStore(log, entries => _checker.Appended(node.Id, entries), snapshot => _checker.SnapshotInstalled(node.Id, snapshot));
        var raftOptions = new RaftOptions
        {
            Id = node.Id,
            RandomSeed = _random.Next(),
            ElectionTimeoutTicks = _options.ElectionTimeoutTicks,
            HeartbeatIntervalTicks = _options.HeartbeatIntervalTicks,
            MaxInflightAppends = _random.Next(1, 64),
            MaxAppendBytes = _oneEntryPerAppend ? 1 : _random.Next(64, 4096),
            SnapshotTimeoutTicks = 50,
            MaxPromoteLagEntries = _maxPromoteLagEntries,
        };
        node.Raft = new RaftNode(raftOptions, state);
        var stateMachine = new SimStateMachine { OnApply = entry => _checker.Applied(node.Id, entry) };
        node.StateMachine = stateMachine;
        var incarnation = node.Incarnation;
        node.Loop = new RaftLoop(node.Raft, store, snapshots, new SimTransport(this, node, incarnation), stateMachine, _loopOptions,
            new SimWorkScheduler(this, node, incarnation), buggify: _buggifyOneIn > 0 ? new SimBuggify(this, node) : null);
        _checker.AfterStep(node.Id, node.Raft);
        Trace($"{node.Id} start #{incarnation} term={state.HardState.Term.Value} last={state.LastIndex.Value} base={state.BaseIndex.Value}");
        if (!node.Started)
        {
            node.Started = true;
            At(_random.Next(_options.TickMs), () => TickNode(node));
        }
    }

    /// <summary>
    /// Flips a bit in a stored log record that a complete batch follows, checks that the log refuses to load and names the
    /// file and offset, then flips it back (the operator restored the disk).
    /// </summary>
    private void FlipBitAndExpectRefusal(SimNode node)
    {
        // What the node will find: recover it once (this cuts a torn tail, as the real start would), then damage it.
        List<(string Path, long Length)> candidates;
        using (var probe = new WalLogStore(node.Disk, _storageOptions))
        {
            probe.Load();
            // Where the records end, not the file: a preallocated segment's zeros after them hold no record to damage.
            candidates = [.. probe.SegmentPaths.Zip(probe.SegmentLengths)];
        }
        if (candidates.Count == 0)
        {
            return; // an installed snapshot left no segment yet
        }
        // The last commit record of the last segment is the one place where damage looks like a torn write.
        candidates[^1] = (candidates[^1].Path, candidates[^1].Length - WalLogStore.CommitRecordBytes);
        candidates.RemoveAll(c => c.Length <= 0);
        if (candidates.Count == 0)
        {
            return;
        }
        var (path, length) = candidates[_random.Next(candidates.Count)];
        var offset = _random.Next((int)length);
        var bit = _random.Next(8);
        node.Disk.FlipBit(path, offset, bit);
        try
        {
            new WalLogStore(node.Disk, _storageOptions).Load();
            throw new SafetyViolationException($"{node.Id}: a flipped bit at {path} offset {offset} went unnoticed when the log loaded");
        }
        catch (StorageException refused)
        {
            if (!refused.Message.Contains(path, StringComparison.Ordinal) || !refused.Message.Contains("offset", StringComparison.Ordinal))
            {
                throw new SafetyViolationException($"{node.Id}: the damage at {path} offset {offset} was refused without naming file and offset: {refused.Message}");
            }
            Trace($"{node.Id} refused to start: {refused.Message}");
        }
        node.Disk.FlipBit(path, offset, bit);
        _faultCounts[FaultKinds.BitFlip] = _faultCounts.GetValueOrDefault(FaultKinds.BitFlip) + 1;
    }

    private void TickNode(SimNode node)
    {
        if (node.Up)
        {
            node.Loop!.Tick();
            ScheduleProcess(node, 0);
        }
        At(_options.TickMs, () => TickNode(node));
    }

    private void ScheduleProcess(SimNode node, int delayMs)
    {
        if (node.ProcessScheduled || !node.Up)
        {
            return;
        }
        node.ProcessScheduled = true;
        var incarnation = node.Incarnation;
        At(delayMs, () => ProcessNode(node, incarnation));
    }

    private void ProcessNode(SimNode node, int incarnation)
    {
        if (node.Incarnation != incarnation)
        {
            return;
        }
        node.ProcessScheduled = false;
        if (!node.Up)
        {
            return;
        }
        var before = node.Raft!.SoftState;
        try
        {
            while (node.Loop!.ProcessPending())
            {
            }
        }
        catch (SimulatedCrashException)
        {
            Crash(node, "crash during fsync");
            At(_random.Next(50, 1_000), () => Restart(node));
            return;
        }
        if (node.Loop.StorageFailure is not null && !node.StorageFailed)
        {
            node.StorageFailed = true;
            Trace($"{node.Id} storage failed: {node.Loop.StorageFailure}");
            // An operator restarts the node; what the failed fsync held may or may not be on disk.
            At(_random.Next(100, 1_000), () =>
            {
                if (node.Incarnation == incarnation)
                {
                    Crash(node, "operator restart after fsync failure");
                    Restart(node);
                }
            });
        }
        var after = node.Raft.SoftState;
        if (after != before)
        {
            Trace($"{node.Id} {after.Role} t{after.Term.Value} leader={after.Leader}");
        }
        // A node whose storage failed has stopped: it persists, sends and applies nothing more until an operator restarts
        // it, and its core may be ahead of its store by the Ready whose persisting failed (a snapshot restored in the core
        // whose file never committed, entries never appended), which no one ever hears of. What it did before the failure
        // was checked step by step (its acknowledgements as they were sent); its next incarnation is checked from what its
        // disk kept.
        if (node.Loop.StorageFailure is null)
        {
            if (node.Loop.HoldsReadyBack)
            {
                // Buggify held the turn's Ready back: the core is ahead of its store until the next turn.
                _checker.AfterHeldStep(node.Id, node.Raft);
            }
            else
            {
                _checker.AfterStep(node.Id, node.Raft);
            }
            _contact.AfterStep(node.Id, node.Raft, _now);
            CheckSnapshotOnDisk(node);
        }
        CompleteOperations(node);
        CompleteChanges(node);
    }

    /// <summary>
    /// The snapshot the core would send a follower that is behind its log is on its disk. (With two or more snapshots kept
    /// it always is: only the one snapshot of its own being written can be newer, and a received one is committed only when
    /// the core installs it. Were it gone, every follower that needs it would wait for good.)
    /// </summary>
    private static void CheckSnapshotOnDisk(SimNode node)
    {
        if (node.Raft!.LatestSnapshot is { } latest
            && !node.Snapshots!.All.Any(s => s.Index == latest.Index && s.Term == latest.Term))
        {
            throw new SafetyViolationException(
                $"{node.Id}: its core's snapshot {latest.Index}/t{latest.Term.Value} is not in its snapshot store ({string.Join(' ', node.Snapshots.All.Select(s => $"{s.Index}/t{s.Term.Value}"))})");
        }
    }

    private void Crash(SimNode node, string why)
    {
        if (!node.Up)
        {
            return;
        }
        node.Disk.Crash(_random);
        node.Up = false;
        node.Loop = null;
        node.Raft = null;
        node.StateMachine = null;
        node.Snapshots = null;
        node.ProcessScheduled = false;
        node.Incarnation++;
        Trace($"{node.Id} crash ({why})");
        foreach (var change in _changes.Where(c => c.Node == node).ToList())
        {
            _changes.Remove(change);
            Trace($"membership: {change.Move} '{change.Change}' unanswered: {node.Id} stopped (it may still take effect)");
        }
    }

    private void Restart(SimNode node)
    {
        if (!node.Up && !node.Retired)
        {
            StartNode(node);
        }
    }

    /// <summary>
    /// The node's removal committed: no fault or client picks it again, nothing is sent to it, and after
    /// <paramref name="stopAfterMs"/> (time for a removed leader to hand off) it stops for good.
    /// </summary>
    private void Retire(SimNode node, string why, int stopAfterMs)
    {
        if (node.Retired)
        {
            return;
        }
        node.Retired = true;
        Trace($"{node.Id} retired ({why})");
        At(stopAfterMs, () => Crash(node, "retired"));
    }

    // ---------------------------------------------------------------- network

    private void Send(SimNode from, int incarnation, Message message)
    {
        if (from.Incarnation != incarnation || !from.Up)
        {
            return;
        }
        _messagesSent++;
        if (message is AppendEntriesResponse { Success: true } acknowledgement)
        {
            // A promise made once sent, whether or not it arrives.
            _checker.Acknowledged(from.Id, acknowledgement.Term, acknowledgement.MatchIndex);
        }
        var to = _nodes[(int)message.To.Value - 1];
        if (!to.Started || to.Retired)
        {
            Trace("void " + message);
            NotifySnapshotOutcome(message, delivered: false);
            return;
        }
        if (_cutLinks.Contains((message.From, message.To)) || !to.Up)
        {
            // As the real transport does when it cannot reach a peer (its stream broke, the connection was refused), the
            // sender is told the peer is unreachable: a leader stops pipelining to it and probes from what it knows it has.
            Trace((to.Up ? "cut  " : "down ") + message);
            NotifySnapshotOutcome(message, delivered: false);
            from.Loop!.ReportUnreachable(message.To);
            ScheduleProcess(from, 1);
            return;
        }
        if (_faultsActive && _random.NextDouble() < _dropRate)
        {
            Trace("drop " + message);
            NotifySnapshotOutcome(message, delivered: false);
            return;
        }
        var copies = _faultsActive && _random.NextDouble() < _duplicateRate ? 2 : 1;
        for (var i = 0; i < copies; i++)
        {
            var delay = _random.Next(1, 5);
            if (_faultsActive && _random.NextDouble() < _spikeRate)
            {
                delay += _random.Next(20, 200);
            }
            if (message is AppendEntriesResponse && _buggifyOneIn > 0 && _faultsActive && _random.Next(4) == 0)
            {
                // Buggify: a slow disk; the acknowledgement leaves well after the entries reached the follower, so the
                // leader's idea of what the follower holds lags what it holds.
                delay += _random.Next(10, 80);
            }
            At(delay, () => Deliver(to, message));
        }
    }

    private void Deliver(SimNode to, Message message)
    {
        if (!to.Up || _cutLinks.Contains((message.From, message.To)))
        {
            Trace("lost " + message);
            NotifySnapshotOutcome(message, delivered: false);
            return;
        }
        ISnapshotWriter? staged = null;
        if (message is InstallSnapshot install)
        {
            // The snapshot's bytes travel beside the message, from the sender's store into a file the receiver stages, as
            // the real transport does (RaftPeerService): written, not committed. The receiver's loop commits it only if its
            // core installs the snapshot, and deletes it otherwise.
            var from = _nodes[(int)message.From.Value - 1];
            string? failure;
            (staged, failure) = from.Up ? TryStageSnapshot(from.Snapshots!, to.Snapshots!, install.Snapshot) : (null, "the sender is down");
            if (staged is null)
            {
                Trace("gone " + message + " (" + failure + ")");
                NotifySnapshotOutcome(message, delivered: false);
                return;
            }
            NotifySnapshotOutcome(message, delivered: true);
        }
        Trace("recv " + message);
        _delivered[message.GetType().Name] = _delivered.GetValueOrDefault(message.GetType().Name) + 1;
        if (staged is not null)
        {
            to.Loop!.DeliverSnapshot((InstallSnapshot)message, staged);
        }
        else
        {
            to.Loop!.Deliver(message);
        }
        _contact.Delivered(to.Id, message.From, _now);
        ScheduleProcess(to, _random.Next(2));
    }

    /// <summary>
    /// Copies a snapshot's bytes from the sender's store into a file staged in the receiver's (not committed: the receiver's
    /// loop decides); else null and why not.
    /// </summary>
    private static (ISnapshotWriter? Staged, string? Failure) TryStageSnapshot(FileSnapshotStore from, FileSnapshotStore to, SnapshotMetadata snapshot)
    {
        ISnapshotWriter? writer = null;
        try
        {
            using var source = from.OpenRead(snapshot);
            writer = to.Create(snapshot);
            source.CopyTo(writer.Stream);
            return (writer, null);
        }
        catch (Exception e) when (e is StorageException or IOException)
        {
            writer?.Dispose();
            return (null, e.Message); // the sender pruned it, or the receiver's disk failed: the leader will try again
        }
    }

    private void NotifySnapshotOutcome(Message message, bool delivered)
    {
        if (message is not InstallSnapshot)
        {
            return;
        }
        var from = _nodes[(int)message.From.Value - 1];
        if (from.Up)
        {
            from.Loop!.ReportSnapshotSent(message.To, delivered);
            ScheduleProcess(from, 1);
        }
    }

    // ---------------------------------------------------------------- faults

    private void ScheduleFaults()
    {
        // A kind comes as often as its weight says (1 unless the seed drew a swarm profile).
        var kinds = new[] { FaultKinds.Partition, FaultKinds.Crash, FaultKinds.CrashDuringSync, FaultKinds.FsyncFailure, FaultKinds.LeaderCrash, FaultKinds.LeaderChurn, FaultKinds.BitFlip, FaultKinds.LeaderSwap, FaultKinds.Membership }
            .Where(Has).SelectMany(k => Enumerable.Repeat(k, _faultWeights.GetValueOrDefault(k, 1))).ToArray();
        if (kinds.Length == 0)
        {
            return;
        }
        // Some seeds are calm, some are storms: the gap between faults is drawn per seed.
        var maxGap = _random.Next(60, 700);
        maxGap = _options.MaxFaultGapMs ?? maxGap;
        long time = _random.Next(100, 400);
        while (time < _options.FaultPhaseMs - 100)
        {
            var kind = kinds[_random.Next(kinds.Length)];
            At(time, () => InjectFault(kind));
            time += _random.Next(maxGap / 3, maxGap);
        }
        // A seed that draws the targeted schedule runs it at least once, early enough to finish in the fault phase.
        if (Has(FaultKinds.LeaderSwap))
        {
            At(_random.Next(150, 800), () => InjectFault(FaultKinds.LeaderSwap));
        }
    }

    private void InjectFault(FaultKinds kind)
    {
        if (!_faultsActive)
        {
            return;
        }
        var up = Live.Where(n => n.Up).ToArray();
        if (_now < _scheduleOwnsClusterUntil)
        {
            return;
        }
        switch (kind)
        {
            case FaultKinds.Partition:
                Partition();
                break;
            case FaultKinds.Crash when up.Length > 0:
                var victim = up[_random.Next(up.Length)];
                Crash(victim, "killed");
                At(_random.Next(50, 1_500), () => Restart(victim));
                break;
            case FaultKinds.CrashDuringSync when up.Length > 0:
                up[_random.Next(up.Length)].Disk.CrashOnNextSync = true;
                break;
            case FaultKinds.FsyncFailure when up.Length > 0:
                up[_random.Next(up.Length)].Disk.FailNextSync = true;
                break;
            case FaultKinds.BitFlip when up.Length > 0:
                var damaged = up[_random.Next(up.Length)];
                Crash(damaged, "stopped; its disk will be damaged");
                damaged.FlipBitOnRestart = true;
                At(_random.Next(50, 800), () => Restart(damaged));
                return; // counted when the refusal is seen
            case FaultKinds.LeaderCrash:
                CrashNextLeader(_random.Next(1, 40));
                break;
            case FaultKinds.LeaderChurn:
                IsolateNextLeaders(_random.Next(2, 6));
                break;
            case FaultKinds.LeaderSwap:
                SwapLeaders();
                break;
            case FaultKinds.Membership:
                if (!ChangeMembership())
                {
                    return;
                }
                // Now and then a second change follows at once, while the first is in flight: the leader must refuse it.
                if (_random.Next(4) == 0)
                {
                    At(_random.Next(0, 20), () => InjectFault(FaultKinds.Membership));
                }
                break;
            default:
                return;
        }
        _faultCounts[kind] = _faultCounts.GetValueOrDefault(kind) + 1;
    }

    /// <summary>Waits for the next leader to be elected (a new term), then kills it that many milliseconds later.</summary>
    private void CrashNextLeader(int afterMs)
    {
        var currentTerm = _nodes.Where(n => n.Up).Select(n => n.Raft!.Term).DefaultIfEmpty(Term.Zero).Max();
        void Watch()
        {
            if (!_faultsActive)
            {
                return;
            }
            var leader = _nodes.FirstOrDefault(n => n.Up && !n.Retired && n.Raft!.Role == Role.Leader && n.Raft.Term > currentTerm);
            if (leader is null)
            {
                At(2, Watch);
                return;
            }
            At(afterMs, () =>
            {
                if (leader.Up && _faultsActive && _now >= _scheduleOwnsClusterUntil)
                {
                    Crash(leader, "leader killed after its election");
                    At(_random.Next(20, 400), () => Restart(leader));
                }
            });
        }
        Watch();
    }

    /// <summary>
    /// Cuts off each of the next <paramref name="count"/> leaders as soon as it is elected or a few milliseconds later, for
    /// a short while.
    /// </summary>
    private void IsolateNextLeaders(int count)
    {
        var seenTerm = _nodes.Where(n => n.Up).Select(n => n.Raft!.Term).DefaultIfEmpty(Term.Zero).Max();
        void Watch()
        {
            if (!_faultsActive || count == 0)
            {
                return;
            }
            var leader = _nodes.FirstOrDefault(n => n.Up && !n.Retired && n.Raft!.Role == Role.Leader && n.Raft.Term > seenTerm);
            if (leader is not null)
            {
                seenTerm = leader.Raft!.Term;
                count--;
                // Half the cuts come at once (the new leader's entries reach nobody); the others a few milliseconds in, so
                // that a new leader gets some of its first appends and their answers through, and not the rest: the new
                // leader's older entries reach a quorum while its own term's no-op does not.
                var term = seenTerm;
                At(_random.Next(2) == 0 ? 0 : _random.Next(1, 30), () =>
                {
                    if (_faultsActive && _now >= _scheduleOwnsClusterUntil && leader.Up && leader.Raft!.Role == Role.Leader && leader.Raft.Term == term)
                    {
                        Isolate([leader.Id], _random.Next(20, 300));
                    }
                });
            }
            At(1, Watch);
        }
        Watch();
    }

    /// <summary>
    /// A leader elected, cut off right after appending, a new leader of a later term, the old leader back: cuts off the
    /// leader now in office (so that an election comes at once), then the next leader at once or after a few milliseconds
    /// of appending; when a leader of a later term appears, cuts that one off instead (the first comes back); cuts off the
    /// third leader either the moment its commit index covers the log it inherited from earlier terms (3 times in 4:
    /// before any follower learns of that commit) or 0 to 15 ms into its term, then lets the partition heal.
    /// </summary>
    private void SwapLeaders()
    {
        var seenTerm = _nodes.Where(n => n.Up).Select(n => n.Raft!.Term).DefaultIfEmpty(Term.Zero).Max();
        var step = 0;
        var deadline = _now + 3_000;
        var cutOnCommit = _random.Next(4) > 0;
        _scheduleOwnsClusterUntil = deadline;
        if (CurrentLeader is { } sitting)
        {
            Isolate([sitting.Id], _random.Next(100, 400));
        }
        void Watch()
        {
            if (!_faultsActive || step == 3 || _now > deadline)
            {
                return;
            }
            var leader = _nodes.FirstOrDefault(n => n.Up && !n.Retired && n.Raft!.Role == Role.Leader && n.Raft.Term > seenTerm);
            if (leader is not null)
            {
                seenTerm = leader.Raft!.Term;
                step++;
                var term = seenTerm;
                Trace($"leader swap: step {step}, {leader.Id} leads t{term.Value} (last={leader.Raft.LastIndex.Value} commit={leader.Raft.CommitIndex.Value})");
                void CutThird()
                {
                    var duration = _random.Next(100, 500);
                    Isolate([leader.Id], duration);
                    _scheduleOwnsClusterUntil = _now + duration;
                }
                bool StillLeads() => _faultsActive && leader.Up && leader.Raft!.Role == Role.Leader && leader.Raft.Term == term;
                if (step == 1)
                {
                    At(_random.Next(2) == 0 ? 0 : _random.Next(1, 20), () =>
                    {
                        if (StillLeads())
                        {
                            Isolate([leader.Id], 2_000);
                        }
                    });
                }
                else if (step == 2)
                {
                    Isolate([leader.Id], 2_000);
                }
                else if (cutOnCommit)
                {
                    // The end of the log it inherited: its newest entry of an earlier term.
                    var inherited = leader.Raft.LastIndex;
                    while (inherited > leader.Raft.CommitIndex && leader.Raft.TermAt(inherited) == term)
                    {
                        inherited = inherited.Previous();
                    }
                    void WatchCommit()
                    {
                        if (!StillLeads() || _now > deadline)
                        {
                            return;
                        }
                        if (leader.Raft!.CommitIndex >= inherited && leader.Raft.CommitIndex > LogIndex.Zero)
                        {
                            CutThird();
                            return;
                        }
                        At(1, WatchCommit);
                    }
                    WatchCommit();
                }
                else
                {
                    At(_random.Next(0, 16), () =>
                    {
                        if (StillLeads())
                        {
                            CutThird();
                        }
                    });
                }
            }
            At(1, Watch);
        }
        Watch();
    }

    private void Partition()
    {
        var ids = Live.Select(n => n.Id).ToList();
        List<NodeId> side;
        var leader = Live.FirstOrDefault(n => n.Up && n.Raft!.Role == Role.Leader);
        switch (_random.Next(3))
        {
            case 0 when leader is not null:
                side = [leader.Id]; // the leader alone
                break;
            case 1:
                // A random minority on one side.
                side = [.. ids.OrderBy(_ => _random.Next()).Take(_random.Next(1, (ids.Count / 2) + 1))];
                break;
            default:
                side = [ids[_random.Next(ids.Count)]];
                break;
        }
        Isolate(side, _random.Next(100, 1_500));
    }

    /// <summary>Cuts every link between <paramref name="side"/> and the rest, and heals it after <paramref name="durationMs"/>.</summary>
    private void Isolate(IReadOnlyCollection<NodeId> side, int durationMs)
    {
        _cutLinks.Clear();
        foreach (var a in _nodes)
        {
            foreach (var b in _nodes)
            {
                if (side.Contains(a.Id) != side.Contains(b.Id))
                {
                    _cutLinks.Add((a.Id, b.Id));
                }
            }
        }
        var generation = ++_partitionGeneration;
        Trace($"partition ({string.Join(' ', side)}) from the rest");
        At(durationMs, () =>
        {
            if (_partitionGeneration == generation)
            {
                _cutLinks.Clear();
                Trace("partition healed");
            }
        });
    }

    private void HealEverything()
    {
        _faultsActive = false;
        _clientsActive = false;
        _cutLinks.Clear();
        _partitionGeneration++;
        Trace("heal everything");
        foreach (var node in Live)
        {
            node.Disk.CrashOnNextSync = false;
            node.Disk.FailNextSync = false;
            if (node.StorageFailed)
            {
                Crash(node, "operator restart after fsync failure");
            }
            Restart(node);
        }
    }

    // ---------------------------------------------------------------- membership

    /// <summary>
    /// Asks the leader for one membership change drawn from those its configuration allows. Voters never drop below three
    /// for a cluster started with five nodes, or below two for one started with three. False if there was nothing to ask.
    /// </summary>
    private bool ChangeMembership()
    {
        var leader = CurrentLeader;
        if (leader is null)
        {
            Trace("membership: no leader to ask");
            return false;
        }
        var config = leader.Raft!.Config;
        var spare = NextSpare();
        var voterFloor = _options.NodeCount >= 5 ? 3 : 2;
        var moves = new List<MembershipMove>();
        if (spare is not null)
        {
            moves.Add(MembershipMove.AddLearner);
        }
        if (!config.Learners.IsEmpty)
        {
            moves.Add(MembershipMove.Promote);
            moves.Add(MembershipMove.RemoveLearner);
        }
        if (config.Voters.Count > voterFloor)
        {
            moves.Add(MembershipMove.RemoveFollower);
            moves.Add(MembershipMove.RemoveLeader);
            if (spare is not null)
            {
                moves.Add(MembershipMove.Replace);
            }
        }
        if (moves.Count == 0)
        {
            Trace($"membership: nothing to change in {config}");
            return false;
        }
        var move = moves[_random.Next(moves.Count)];
        switch (move)
        {
            case MembershipMove.AddLearner:
                AddSpare(leader, spare!, move);
                break;
            case MembershipMove.Promote:
                PostChange(leader, move, new ConfChange(ConfChangeKind.Promote, Pick(config.Learners)));
                break;
            case MembershipMove.RemoveLearner:
                PostChange(leader, move, new ConfChange(ConfChangeKind.Remove, Pick(config.Learners)));
                break;
            case MembershipMove.RemoveLeader:
                PostChange(leader, move, new ConfChange(ConfChangeKind.Remove, leader.Id));
                break;
            case MembershipMove.RemoveFollower:
                PostChange(leader, move, new ConfChange(ConfChangeKind.Remove, Pick(config.Voters.Remove(leader.Id))));
                break;
            default:
                PostChange(leader, move, new ConfChange(ConfChangeKind.Remove, Pick(config.Voters)));
                AddSpareLater(attempt: 1);
                break;
        }
        return true;
    }

    private NodeId Pick(IReadOnlyCollection<NodeId> ids) => ids.ElementAt(_random.Next(ids.Count));

    /// <summary>
    /// A spare to add: one started earlier whose addition never took (still live, not a member here, and not the subject of
    /// a change still unanswered: a removal that applied but was not yet seen would retire it after it is added again),
    /// else a new one.
    /// </summary>
    private SimNode? NextSpare()
    {
        var config = CurrentLeader?.Raft!.Config;
        return _nodes.FirstOrDefault(n => n.IsSpare && n.Started && !n.Retired && config is not null && !config.Contains(n.Id)
                && !_changes.Any(c => c.Change.Node == n.Id))
            ?? _nodes.FirstOrDefault(n => n.IsSpare && !n.Started);
    }

    /// <summary>Starts the spare if it never ran (empty disk, no configuration), then asks the leader to add it as a learner.</summary>
    private void AddSpare(SimNode leader, SimNode spare, MembershipMove move)
    {
        if (!spare.Started)
        {
            StartNode(spare);
        }
        PostChange(leader, move, new ConfChange(ConfChangeKind.AddLearner, spare.Id, $"sim://{spare.Id}"));
    }

    /// <summary>The second half of a replacement: a spare is added once the leader has no change in flight (a few tries).</summary>
    private void AddSpareLater(int attempt) =>
        At(_random.Next(100, 500), () =>
        {
            if (!_faultsActive)
            {
                return;
            }
            var leader = CurrentLeader;
            var spare = NextSpare();
            if (spare is null)
            {
                Trace("membership: no spare left to replace a voter");
                return;
            }
            if (leader is null || !leader.Raft!.ConfigCommitted || leader.Raft.Config.IsJoint)
            {
                if (attempt < 8)
                {
                    AddSpareLater(attempt + 1);
                }
                return;
            }
            AddSpare(leader, spare, MembershipMove.AddLearner);
        });

    private PendingChange PostChange(SimNode leader, MembershipMove move, ConfChange change)
    {
        var pending = new PendingChange(leader, leader.Incarnation, move, change, leader.Loop!.ChangeMembershipAsync(change));
        _changes.Add(pending);
        Trace($"membership: {move} '{change}' asked of {leader.Id} (t{leader.Raft!.Term.Value}, {leader.Raft.Config})");
        ScheduleProcess(leader, 0);
        return pending;
    }

    private void CompleteChanges(SimNode node)
    {
        foreach (var pending in _changes.Where(c => c.Node == node && c.Incarnation == node.Incarnation && c.Answer.IsCompleted).ToList())
        {
            _changes.Remove(pending);
            var outcome = pending.Answer.Result;
            pending.Outcome = outcome;
            Trace($"membership: {pending.Move} '{pending.Change}' -> {outcome.Status}{(outcome.Reason is null ? "" : $" ({outcome.Reason})")}");
            if (outcome.Status != ProposalStatus.Applied)
            {
                continue;
            }
            _membershipChanges[pending.Move] = _membershipChanges.GetValueOrDefault(pending.Move) + 1;
            if (pending.Change.Kind == ConfChangeKind.Remove)
            {
                // Its removal applied on the leader, so it committed: the node is no longer needed by any quorum.
                Retire(_nodes[(int)pending.Change.Node.Value - 1], "its removal committed", _random.Next(0, 300));
            }
        }
    }

    // ---------------------------------------------------------------- clients

    private void StartOperation(SimClient client)
    {
        if (!_clientsActive)
        {
            return;
        }
        var live = Live.ToArray();
        var node = client.Preferred is { } preferred && _random.Next(10) > 0 && live.FirstOrDefault(n => n.Id == preferred) is { } hinted
            ? hinted
            : live[_random.Next(live.Length)];
        var key = "k" + _random.Next(5).ToString(CultureInfo.InvariantCulture);
        client.Sequence++;
        var operation = new SimOperation(node, node.Incarnation, _now);
        client.Current = operation;
        if (_writeOnly || _random.Next(10) < 6)
        {
            operation.Data = $"{key}=c{client.Id}-{client.Sequence}";
            if (!node.Up)
            {
                // Connection refused: nothing was sent.
                FinishWrite(client, new ProposalOutcome(ProposalStatus.Rejected, LogIndex.Zero, Term.Zero, null, NodeId.None, "down"));
                return;
            }
            operation.Write = node.Loop!.ProposeAsync(Encoding.UTF8.GetBytes(operation.Data));
        }
        else
        {
            // Every write acknowledged before this read began must be visible to it (linearizability, real-time order).
            operation.RequiredIndex = _maxAcknowledgedIndex;
            if (!node.Up)
            {
                client.Current = null;
                client.Preferred = null;
                Next(client);
                return;
            }
            operation.Read = node.Loop!.ReadAsync(Encoding.UTF8.GetBytes(key), linearizable: true);
        }
        ScheduleProcess(node, _random.Next(2));
        At(ClientTimeoutMs, () => TimeOut(client, operation));
    }

    private void CompleteOperations(SimNode node)
    {
        foreach (var client in _clients)
        {
            var operation = client.Current;
            if (operation is null || operation.Node != node || operation.Incarnation != node.Incarnation)
            {
                continue;
            }
            if (operation.Write is { IsCompleted: true } write)
            {
                FinishWrite(client, write.Result);
            }
            else if (operation.Read is { IsCompleted: true } read)
            {
                FinishRead(client, read.Result);
            }
        }
    }

    private void FinishWrite(SimClient client, ProposalOutcome outcome)
    {
        var operation = client.Current!;
        client.Current = null;
        Trace($"c{client.Id} write '{operation.Data}' -> {outcome.Status} {outcome.Index.Value}");
        switch (outcome.Status)
        {
            case ProposalStatus.Applied:
                _acknowledged.Add((outcome.Index, operation.Data!));
                _maxAcknowledgedIndex = Math.Max(_maxAcknowledgedIndex, (long)outcome.Index.Value);
                client.Preferred = operation.Node.Id;
                break;
            case ProposalStatus.NotLeader or ProposalStatus.Rejected or ProposalStatus.Lost:
                _checker.ToldNotApplied(operation.Data!);
                client.Preferred = outcome.LeaderHint.IsNone ? null : outcome.LeaderHint;
                break;
            default:
                client.Preferred = null; // unknown: it may or may not be applied
                break;
        }
        Next(client);
    }

    private void FinishRead(SimClient client, ReadOutcome outcome)
    {
        var operation = client.Current!;
        client.Current = null;
        if (outcome.Status == ReadOutcomeStatus.Ok)
        {
            _reads++;
            var result = SimReadResult.Decode(outcome.Result);
            Trace($"c{client.Id} read at {result.LastApplied.Value} (needs {operation.RequiredIndex})");
            if ((long)result.LastApplied.Value < operation.RequiredIndex)
            {
                throw new SafetyViolationException(
                    $"stale read: {operation.Node.Id} answered a linearizable read with state through {result.LastApplied}, but a write at i{operation.RequiredIndex} was acknowledged before the read began");
            }
            client.Preferred = operation.Node.Id;
        }
        else
        {
            client.Preferred = outcome.LeaderHint.IsNone ? null : outcome.LeaderHint;
        }
        Next(client);
    }

    private void TimeOut(SimClient client, SimOperation operation)
    {
        if (client.Current != operation)
        {
            return;
        }
        client.Current = null;
        client.Preferred = null;
        Trace($"c{client.Id} timed out");
        Next(client);
    }

    private void Next(SimClient client) => At(_random.Next(0, 10), () => StartOperation(client));

    // ---------------------------------------------------------------- the end

    /// <summary>
    /// The leader once the cluster converged, else null: one leader, whose configuration is committed and simple, which
    /// committed everything in its log, in its term; and every member of that configuration up, holding that log, applied
    /// through its commit, following it, with the same state. Nodes outside the configuration are not judged.
    /// </summary>
    private SimNode? ConvergedLeader()
    {
        if (_clients.Any(c => c.Current is not null))
        {
            return null;
        }
        var leaders = _nodes.Where(n => n.Up && !n.Retired && n.Raft!.Role == Role.Leader).ToList();
        if (leaders.Count != 1)
        {
            return null;
        }
        var leader = leaders[0];
        var raft = leader.Raft!;
        if (!raft.ConfigCommitted || raft.Config.IsJoint || raft.TermAt(raft.CommitIndex) != raft.Term || raft.CommitIndex != raft.LastIndex)
        {
            return null;
        }
        foreach (var id in raft.Config.Members)
        {
            var member = _nodes[(int)id.Value - 1];
            if (!member.Up || member.Retired
                || member.Raft!.AppliedIndex != raft.CommitIndex
                || member.Raft.LastIndex != raft.LastIndex
                || member.Raft.Leader != leader.Id
                || member.StateMachine!.Hash != leader.StateMachine!.Hash)
            {
                return null;
            }
        }
        return leader;
    }

    private void CheckFinalState(SimNode leader)
    {
        var config = leader.Raft!.Config;
        foreach (var node in Live.Where(n => !config.Contains(n.Id)).ToList())
        {
            Retire(node, $"not a member of {config}", stopAfterMs: 0);
            Crash(node, "retired");
        }
        var reference = leader.StateMachine!;
        foreach (var id in config.Members)
        {
            var node = _nodes[(int)id.Value - 1];
            if (node.StateMachine!.Hash != reference.Hash || node.StateMachine.LastApplied != reference.LastApplied)
            {
                throw new SafetyViolationException($"{node.Id} converged to a different state than {leader.Id}");
            }
        }
        foreach (var (index, data) in _acknowledged)
        {
            if (_checker.AppliedAt(index) != data)
            {
                throw new SafetyViolationException($"acknowledged write '{data}' at {index} is not what was applied there ('{_checker.AppliedAt(index)}')");
            }
            if (reference.LastApplied < index)
            {
                throw new SafetyViolationException($"acknowledged write '{data}' at {index} is beyond what the members applied ({reference.LastApplied})");
            }
        }
        Trace($"converged at {reference.LastApplied.Value}, hash {reference.Hash:x16}, {config}");
    }

    private string DescribeNodes() =>
        string.Join("; ", _nodes.Where(n => n.Started).Select(n => n.Retired
            ? $"{n.Id} retired"
            : n.Up
            ? $"{n.Id} {n.Raft!.Role} t{n.Raft.Term.Value} leader={n.Raft.Leader} last={n.Raft.LastIndex.Value} commit={n.Raft.CommitIndex.Value} applied={n.Raft.AppliedIndex.Value} state={n.StateMachine!.LastApplied.Value}/{n.StateMachine.Hash:x16} config={n.Raft.Config}"
            : $"{n.Id} down")) + $"; clients waiting: {_clients.Count(c => c.Current is not null)}";

    // ---------------------------------------------------------------- parts

    private sealed class SimNode(NodeId id, bool isSpare)
    {
        public NodeId Id { get; } = id;

        /// <summary>Beyond the bootstrap configuration: started only when about to be added.</summary>
        public bool IsSpare { get; } = isSpare;

        /// <summary>Started at least once (a spare is not, until it is added).</summary>
        public bool Started { get; set; }

        /// <summary>Removed from the cluster: stopped for good, never restarted, never picked by faults or clients.</summary>
        public bool Retired { get; set; }

        public SimFileSystem Disk { get; } = new();

        public FileSnapshotStore? Snapshots { get; set; }

        public bool FlipBitOnRestart { get; set; }

        public RaftNode? Raft { get; set; }

        public RaftLoop? Loop { get; set; }

        public SimStateMachine? StateMachine { get; set; }

        public bool Up { get; set; }

        public bool StorageFailed { get; set; }

        public bool ProcessScheduled { get; set; }

        public int Incarnation { get; set; }
    }

    private sealed class SimTransport(Simulator simulator, SimNode node, int incarnation) : ITransport
    {
        public void Send(Message message) => simulator.Send(node, incarnation, message);
    }

    private sealed class SimWorkScheduler(Simulator simulator, SimNode node, int incarnation) : IWorkScheduler
    {
        public void Run(Action work) =>
            simulator.At(simulator._random.Next(1, 30), () =>
            {
                if (node.Incarnation == incarnation && node.Up)
                {
                    try
                    {
                        work();
                    }
                    catch (SimulatedCrashException)
                    {
                        simulator.Crash(node, "crash during a snapshot's fsync");
                        simulator.At(simulator._random.Next(50, 1_000), () => simulator.Restart(node));
                        return;
                    }
                    simulator.ScheduleProcess(node, 0);
                }
            });
    }

    /// <summary>
    /// The loop's buggify points fire during the fault phase, one time in <see cref="_buggifyOneIn"/>; a snapshot at an
    /// awkward moment (asked only at such a moment) one time in 3.
    /// </summary>
    private sealed class SimBuggify(Simulator simulator, SimNode node) : IBuggify
    {
        public bool Fires(BuggifyPoint point)
        {
            var oneIn = point == BuggifyPoint.SnapshotAtAwkwardMoment ? 3 : simulator._buggifyOneIn;
            if (!simulator._faultsActive || simulator._random.Next(oneIn) != 0)
            {
                return false;
            }
            simulator.Trace($"{node.Id} buggify {point}");
            simulator._faultCounts[FaultKinds.Buggify] = simulator._faultCounts.GetValueOrDefault(FaultKinds.Buggify) + 1;
            simulator._buggifyFired[point] = simulator._buggifyFired.GetValueOrDefault(point) + 1;
            return true;
        }
    }

    private sealed class SimClient(int id)
    {
        public int Id { get; } = id;

        public int Sequence { get; set; }

        public NodeId? Preferred { get; set; }

        public SimOperation? Current { get; set; }
    }

    /// <summary>A membership change asked of <see cref="Node"/>'s loop (in its incarnation), until it answers.</summary>
    private sealed class PendingChange(SimNode node, int incarnation, MembershipMove move, ConfChange change, Task<ProposalOutcome> answer)
    {
        public SimNode Node { get; } = node;

        public int Incarnation { get; } = incarnation;

        public MembershipMove Move { get; } = move;

        public ConfChange Change { get; } = change;

        public Task<ProposalOutcome> Answer { get; } = answer;

        public ProposalOutcome? Outcome { get; set; }
    }

    private sealed class SimOperation(SimNode node, int incarnation, long invokedAt)
    {
        public SimNode Node { get; } = node;

        public int Incarnation { get; } = incarnation;

        public long InvokedAt { get; } = invokedAt;

        public string? Data { get; set; }

        public long RequiredIndex { get; set; }

        public Task<ProposalOutcome>? Write { get; set; }

        public Task<ReadOutcome>? Read { get; set; }
    }
}

public sealed record SimulationResult(
    int Seed,
    int NodeCount,
    long Events,
    long MessagesSent,
    int AcknowledgedWrites,
    int Reads,
    int LeadersElected,
    int AppliedEntries,
    IReadOnlyDictionary<FaultKinds, int> Faults,
    IReadOnlyList<string> Trace,
    ulong TraceHash,
    int SnapshotsHeld)
{
    /// <summary>Membership changes that applied, by kind.</summary>
    public IReadOnlyDictionary<MembershipMove, int> MembershipChanges { get; init; } = new Dictionary<MembershipMove, int>();

    /// <summary>How often each of the loop's buggify points fired.</summary>
    public IReadOnlyDictionary<BuggifyPoint, int> BuggifyFired { get; init; } = new Dictionary<BuggifyPoint, int>();
}

public sealed class SimulationFailureException : Exception
{
    /// <summary>Every event of the failed run, when it was recorded.</summary>
    public IReadOnlyList<string> Trace { get; init; } = [];

    public SimulationFailureException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public SimulationFailureException()
    {
    }

    public SimulationFailureException(string message) : base(message)
    {
    }
}
