using Prometheus;
using RaftKv.Node;
using RaftKv.RaftCore;

namespace RaftKv.Hosting;

/// <summary>
/// The node's Prometheus metrics, in a registry of its own (so that several nodes in one test process do not mix).
/// Latency of a write is split where it is spent: the local fsync, the time until the entry was committed (replication),
/// and applying it. Gauges are read from the loop's status just before each scrape.
/// </summary>
internal sealed class RaftMetrics
{
    private static readonly double[] LatencyBuckets = Histogram.ExponentialBuckets(0.00005, 2, 18); // 50 µs … 6.5 s

    private readonly Gauge _term;
    private readonly Gauge _role;
    private readonly Gauge _commitIndex;
    private readonly Gauge _appliedIndex;
    private readonly Gauge _lastIndex;
    private readonly Gauge _snapshotIndex;
    private readonly Gauge _peerLag;
    private readonly Gauge _peerLastContact;
    private readonly Gauge _peerConnected;
    private readonly Gauge _droppedMessages;
    private readonly Gauge _storageFailed;
    private readonly Gauge _walBytes;
    private readonly Gauge _snapshotBytes;
    private readonly Counter.Child[] _proposalsByOutcome; // indexed by ProposalStatus
    private readonly Counter _forwarded;
    private readonly Counter _peerRefused;
    private readonly Counter _leaderChanges;
    private readonly Counter _snapshotsTaken;
    private readonly Histogram _fsync;
    private readonly Histogram _replication;
    private readonly Histogram _apply;
    private readonly Histogram _snapshotDuration;
    private readonly Gauge _gcHeap;
    private readonly Gauge _gcCommitted;
    private readonly Counter _gcPause;
    private readonly Counter _gcAllocated;
    private readonly Gauge _threadPoolThreads;
    private readonly Gauge _threadPoolQueue;
    private readonly Counter _threadPoolCompleted;
    private readonly Counter _lockContentions;
    private RaftNodeHost? _node;

    public RaftMetrics()
    {
        Registry = Metrics.NewCustomRegistry();
        Factory = Metrics.WithCustomRegistry(Registry);
        _term = Factory.CreateGauge("raftkv_term", "Current Raft term of this node.");
        _role = Factory.CreateGauge("raftkv_role", "1 for the role this node is in, 0 for the others.", new GaugeConfiguration { LabelNames = ["role"] });
        _commitIndex = Factory.CreateGauge("raftkv_commit_index", "Highest log index known to be committed (on a quorum).");
        _appliedIndex = Factory.CreateGauge("raftkv_applied_index", "Highest log index applied to the state machine.");
        _lastIndex = Factory.CreateGauge("raftkv_last_index", "Last index in this node's log.");
        _snapshotIndex = Factory.CreateGauge("raftkv_snapshot_index", "Index of the newest snapshot.");
        _peerLag = Factory.CreateGauge("raftkv_peer_lag_entries", "On the leader: entries a follower is behind the leader's last index.", new GaugeConfiguration { LabelNames = ["peer"] });
        _peerLastContact = Factory.CreateGauge("raftkv_peer_last_contact_seconds", "On the leader: time since a follower last answered.", new GaugeConfiguration { LabelNames = ["peer"] });
        _peerConnected = Factory.CreateGauge("raftkv_peer_connected", "1 if this node's stream to the peer is up.", new GaugeConfiguration { LabelNames = ["peer"] });
        _droppedMessages = Factory.CreateGauge("raftkv_dropped_messages", "Raft messages dropped because a queue was full, by where they were dropped.", new GaugeConfiguration { LabelNames = ["queue"] });
        _storageFailed = Factory.CreateGauge("raftkv_storage_failed", "1 once a write or fsync failed; the node takes no more writes until restarted.");
        _walBytes = Factory.CreateGauge("raftkv_wal_bytes", "Bytes of records in the write-ahead log's segments (preallocated segments take more disk).");
        _snapshotBytes = Factory.CreateGauge("raftkv_snapshot_bytes", "Size of the newest snapshot file.");
        var proposals = Factory.CreateCounter("raftkv_proposals_total", "Writes proposed on this node, by outcome.", new CounterConfiguration { LabelNames = ["outcome"] });
        // One child per outcome, made once: no label strings per write (and every outcome is exported from the start).
        var outcomes = Enum.GetValues<ProposalStatus>();
        _proposalsByOutcome = new Counter.Child[outcomes.Max(o => (int)o) + 1];
        foreach (var outcome in outcomes)
        {
            _proposalsByOutcome[(int)outcome] = proposals.WithLabels(outcome.ToString().ToLowerInvariant());
        }
        _forwarded = Factory.CreateCounter("raftkv_forwarded_requests_total", "Client requests this follower forwarded to the leader.");
        _peerRefused = Factory.CreateCounter("raftkv_peer_refused_total",
            "Peer calls and messages refused: another cluster, not a member, a data directory the cluster does not know, a sender that is not who it says, a stale snapshot.");
        _leaderChanges = Factory.CreateCounter("raftkv_leader_changes_total", "Times this node saw the leader change.");
        _snapshotsTaken = Factory.CreateCounter("raftkv_snapshots_total", "Snapshots this node took of its own state.");
        _fsync = Factory.CreateHistogram("raftkv_fsync_seconds", "Time to persist one Ready (write and fsync).",
            new HistogramConfiguration { Buckets = LatencyBuckets });
        _replication = Factory.CreateHistogram("raftkv_commit_seconds", "Time from proposing a write on the leader to seeing it committed (replication).",
            new HistogramConfiguration { Buckets = LatencyBuckets });
        _apply = Factory.CreateHistogram("raftkv_apply_seconds", "Time to apply one batch of committed entries.",
            new HistogramConfiguration { Buckets = LatencyBuckets });
        _snapshotDuration = Factory.CreateHistogram("raftkv_snapshot_seconds", "Time to capture and write a snapshot of this node's state.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 16) });
        Registry.AddBeforeCollectCallback(CollectAsync);
        // A custom registry gets none of prometheus-net's defaults: the process and the runtime are added here.
        // DotNetStats: process_cpu_seconds_total, process_working_set_bytes, process_num_threads, process_open_handles,
        // dotnet_collection_count_total{generation}, dotnet_total_memory_bytes. prometheus-net's MeterAdapter would
        // bring the runtime's "System.Runtime" meter too, but exports its counters as gauges named …_count, which
        // `promtool check metrics` refuses; the few that matter are read from the runtime directly instead.
        DotNetStats.Register(Registry);
        _gcHeap = Factory.CreateGauge("dotnet_gc_heap_size_bytes", "Size of the GC heap after the last collection.");
        _gcCommitted = Factory.CreateGauge("dotnet_gc_committed_bytes", "Memory the GC had committed after the last collection.");
        _gcPause = Factory.CreateCounter("dotnet_gc_pause_seconds_total", "Time the runtime was paused for garbage collection.");
        _gcAllocated = Factory.CreateCounter("dotnet_gc_allocated_bytes_total", "Bytes allocated on the managed heap.");
        _threadPoolThreads = Factory.CreateGauge("dotnet_threadpool_threads", "Threads in the thread pool.");
        _threadPoolQueue = Factory.CreateGauge("dotnet_threadpool_queued_items", "Work items waiting in the thread pool's queues.");
        _threadPoolCompleted = Factory.CreateCounter("dotnet_threadpool_completed_items_total", "Work items the thread pool has run.");
        _lockContentions = Factory.CreateCounter("dotnet_lock_contentions_total", "Times a thread waited for a Monitor lock held by another.");
        Registry.AddBeforeCollectCallback(CollectRuntime);
    }

    public CollectorRegistry Registry { get; }

    public IMetricFactory Factory { get; }

    public void Attach(RaftNodeHost node) => _node = node;

    public void Persisted(int entryCount, TimeSpan syncDuration) => _fsync.Observe(syncDuration.TotalSeconds);

    public void Applied(int entryCount, LogIndex appliedIndex, TimeSpan duration) => _apply.Observe(duration.TotalSeconds);

    public void ProposalCommitted(TimeSpan sinceProposed) => _replication.Observe(sinceProposed.TotalSeconds);

    public void LeaderChanged() => _leaderChanges.Inc();

    public void SnapshotTaken(SnapshotMetadata metadata, TimeSpan duration)
    {
        _snapshotsTaken.Inc();
        _snapshotDuration.Observe(duration.TotalSeconds);
    }

    public void StorageFailed(string reason) => _storageFailed.Set(1);

    public void ProposalOutcome(ProposalStatus status) => _proposalsByOutcome[(int)status].Inc();

    public void Forwarded() => _forwarded.Inc();

    public void PeerRefused() => _peerRefused.Inc();

    private void CollectRuntime()
    {
        var gc = GC.GetGCMemoryInfo();
        _gcHeap.Set(gc.HeapSizeBytes);
        _gcCommitted.Set(gc.TotalCommittedBytes);
        // The runtime keeps these as totals since start: IncTo sets a counter to a total without ever lowering it.
        _gcPause.IncTo(GC.GetTotalPauseDuration().TotalSeconds);
        _gcAllocated.IncTo(GC.GetTotalAllocatedBytes());
        _threadPoolThreads.Set(ThreadPool.ThreadCount);
        _threadPoolQueue.Set(ThreadPool.PendingWorkItemCount);
        _threadPoolCompleted.IncTo(ThreadPool.CompletedWorkItemCount);
        _lockContentions.IncTo(Monitor.LockContentionCount);
    }

    private async Task CollectAsync(CancellationToken cancellationToken)
    {
        if (_node is null)
        {
            return;
        }
        NodeStatus status;
        try
        {
            status = await _node.Loop.GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(2), cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            return; // the loop is stuck: the gauges keep their last values, and /health/ready says why
        }
        var raft = status.Raft;
        _term.Set(raft.Term.Value);
        foreach (var role in Enum.GetValues<Role>())
        {
            _role.WithLabels(role.ToString().ToLowerInvariant()).Set(role == raft.Role ? 1 : 0);
        }
        _commitIndex.Set(raft.Commit.Value);
        _appliedIndex.Set(raft.Applied.Value);
        _lastIndex.Set(raft.LastIndex.Value);
        _snapshotIndex.Set(raft.SnapshotIndex.Value);
        _droppedMessages.WithLabels("inbox").Set(status.DroppedMessages);
        _storageFailed.Set(status.StorageFailure is null ? 0 : 1);
        foreach (var (peer, dropped) in _node.Transport.DroppedMessages)
        {
            _droppedMessages.WithLabels("outbox_" + peer).Set(dropped);
        }
        foreach (var (peer, connected) in _node.Transport.Connected)
        {
            _peerConnected.WithLabels(peer.ToString()).Set(connected ? 1 : 0);
        }
        foreach (var peer in raft.Peers)
        {
            _peerLag.WithLabels(peer.Id.ToString()).Set(raft.LastIndex.Value - Math.Min(raft.LastIndex.Value, peer.Match.Value));
            _peerLastContact.WithLabels(peer.Id.ToString()).Set(peer.TicksSinceContact * _node.TickSeconds);
        }
        _walBytes.Set(_node.Log.SizeBytes);
        if (_node.SnapshotFiles.Latest is { } latest)
        {
            _snapshotBytes.Set(_node.SnapshotFiles.SizeOf(latest));
        }
    }
}
