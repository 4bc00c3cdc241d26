using System.Text;
using Microsoft.Extensions.Time.Testing;
using RaftKv.RaftCore;
using RaftKv.Storage;
using RaftKv.Testing;

namespace RaftKv.Node.Tests;

public sealed class RaftLoopTests
{
    private static readonly NodeId N1 = new(1);

    private sealed class InlineScheduler : IWorkScheduler
    {
        public void Run(Action work) => work();
    }

    /// <summary>Holds background work (a snapshot being written) until the test runs it.</summary>
    private sealed class HeldScheduler : IWorkScheduler
    {
        public List<Action> Held { get; } = [];

        public void Run(Action work) => Held.Add(work);

        public void RunHeld()
        {
            var held = Held.ToList();
            Held.Clear();
            held.ForEach(work => work());
        }
    }

    private sealed class NoTransport(MemoryLogStore? store = null) : ITransport
    {
        public List<Message> Sent { get; } = [];

        /// <summary>For each message sent, how many fsyncs the store had done by then.</summary>
        public List<int> SyncsBeforeSend { get; } = [];

        public void Send(Message message)
        {
            Sent.Add(message);
            SyncsBeforeSend.Add(store?.SyncCount ?? 0);
        }
    }

    private sealed class Harness
    {
        public Harness(int voters = 1, NodeLoopOptions? options = null, IWorkScheduler? background = null, IBuggify? buggify = null)
        {
            Transport = new NoTransport(Store);
            var config = ClusterConfig.Create(Enumerable.Range(1, voters).Select(i => new NodeId((ulong)i)));
            var state = StartupState.Load(Store, Snapshots, config);
            Raft = new RaftNode(new RaftOptions { Id = N1, RandomSeed = 1 }, state);
            Loop = new RaftLoop(Raft, Store, Snapshots, Transport, StateMachine, options ?? new NodeLoopOptions(), background ?? new InlineScheduler(), buggify: buggify);
        }

        public MemoryLogStore Store { get; } = new();

        public MemorySnapshotStore Snapshots { get; } = new();

        public SimStateMachine StateMachine { get; } = new();

        public NoTransport Transport { get; }

        public RaftNode Raft { get; }

        public RaftLoop Loop { get; }

        public void ElectSelf()
        {
            for (var i = 0; i < 25 && Raft.Role != Role.Leader; i++)
            {
                Loop.Tick();
                Loop.ProcessPending();
            }
            Raft.Role.Should().Be(Role.Leader);
        }

        public T Run<T>(Task<T> task)
        {
            while (Loop.ProcessPending())
            {
            }
            task.IsCompleted.Should().BeTrue("the loop answered within the step");
            return task.Result;
        }
    }

    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>The result of a task the synchronous loop already completed.</summary>
    private static T Done<T>(Task<T> task)
    {
        task.IsCompleted.Should().BeTrue();
        return task.Result;
    }

    [Fact]
    public void A_proposal_completes_after_its_entry_is_persisted_and_applied()
    {
        var node = new Harness();
        node.ElectSelf();
        var syncsBefore = node.Store.SyncCount;

        var outcome = node.Run(node.Loop.ProposeAsync(Bytes("k=v")));

        outcome.Status.Should().Be(ProposalStatus.Applied);
        SimStateMachine.AppliedIndex(outcome.Result).Should().Be(outcome.Index);
        node.StateMachine.LastApplied.Should().Be(outcome.Index);
        node.Store.SyncCount.Should().BeGreaterThan(syncsBefore);
        // Power fails now, losing every write not fsynced: the acknowledged entry is still there.
        node.Store.Crash(keepUnsynced: 0);
        node.Store.Load().Entries.Should().Contain(e => e.Index == outcome.Index);
    }

    [Fact]
    public void Proposals_that_arrive_together_share_one_fsync()
    {
        var node = new Harness();
        node.ElectSelf();
        var syncsBefore = node.Store.SyncCount;

        var tasks = Enumerable.Range(0, 50).Select(i => node.Loop.ProposeAsync(Bytes($"k{i}=v"))).ToList();
        while (node.Loop.ProcessPending())
        {
        }

        tasks.Select(Done).Should().OnlyContain(o => o.Status == ProposalStatus.Applied);
        (node.Store.SyncCount - syncsBefore).Should().Be(1);
    }

    [Fact]
    public void A_linearizable_read_sees_every_write_applied_before_it()
    {
        var node = new Harness();
        node.ElectSelf();
        node.Run(node.Loop.ProposeAsync(Bytes("k=one")));
        var write = node.Run(node.Loop.ProposeAsync(Bytes("k=two")));

        var read = node.Run(node.Loop.ReadAsync(Bytes("k"), linearizable: true));

        write.Status.Should().Be(ProposalStatus.Applied);
        read.Status.Should().Be(ReadOutcomeStatus.Ok);
        SimReadResult.Decode(read.Result).Value.Should().Be("two");
        read.ReadIndex.Should().Be(write.Index);
    }

    [Fact]
    public void A_follower_refuses_a_proposal_and_a_linearizable_read_but_serves_a_stale_read()
    {
        var node = new Harness(voters: 3);

        var proposal = node.Run(node.Loop.ProposeAsync(Bytes("k=v")));
        var linearizable = node.Run(node.Loop.ReadAsync(Bytes("k"), linearizable: true));
        var stale = node.Run(node.Loop.ReadAsync(Bytes("k"), linearizable: false));

        proposal.Status.Should().Be(ProposalStatus.NotLeader);
        linearizable.Status.Should().Be(ReadOutcomeStatus.NotLeader);
        stale.Status.Should().Be(ReadOutcomeStatus.Ok);
    }

    [Fact]
    public void A_failed_fsync_stops_writes_for_good_but_stale_reads_go_on()
    {
        var node = new Harness();
        node.ElectSelf();
        node.Run(node.Loop.ProposeAsync(Bytes("k=before")));
        node.Store.FailNextSync = true;

        var failed = node.Run(node.Loop.ProposeAsync(Bytes("k=lost")));
        var syncsAfterFailure = node.Store.SyncCount;
        var after = node.Run(node.Loop.ProposeAsync(Bytes("k=after")));
        var stale = node.Run(node.Loop.ReadAsync(Bytes("k"), linearizable: false));
        var linearizable = node.Run(node.Loop.ReadAsync(Bytes("k"), linearizable: true));

        failed.Status.Should().Be(ProposalStatus.Unknown, "the entry may or may not have reached the disk");
        node.Raft.Role.Should().Be(Role.Follower, "a node that cannot persist does not lead");
        after.Status.Should().Be(ProposalStatus.Rejected);
        after.Reason.Should().Contain("fsync failure");
        node.Loop.StorageFailure.Should().Contain("EIO");
        stale.Status.Should().Be(ReadOutcomeStatus.Ok);
        SimReadResult.Decode(stale.Result).Value.Should().Be("before");
        linearizable.Status.Should().Be(ReadOutcomeStatus.Unavailable);
        node.Store.FailNextSync.Should().BeFalse();
        node.Store.SyncCount.Should().Be(syncsAfterFailure, "no fsync is attempted after one failed");
    }

    [Fact]
    public void Requests_beyond_the_pending_bound_are_refused_at_once()
    {
        var node = new Harness(options: new NodeLoopOptions { MaxPendingRequests = 2 });
        node.ElectSelf();

        var tasks = Enumerable.Range(0, 3).Select(i => node.Loop.ProposeAsync(Bytes($"k{i}=v"))).ToList();

        Done(tasks[2]).Status.Should().Be(ProposalStatus.Rejected);
        Done(tasks[2]).Reason.Should().Contain("too many requests");
        while (node.Loop.ProcessPending())
        {
        }
        tasks.Take(2).Select(Done).Should().OnlyContain(o => o.Status == ProposalStatus.Applied);
    }

    [Fact]
    public void A_snapshot_is_taken_past_the_threshold_and_the_log_is_compacted_behind_it()
    {
        var node = new Harness(options: new NodeLoopOptions { SnapshotThresholdEntries = 20, SnapshotKeepEntries = 5 });
        node.ElectSelf();

        for (var i = 0; i < 30; i++)
        {
            node.Run(node.Loop.ProposeAsync(Bytes($"k{i}=v")));
        }

        node.Snapshots.Latest.Should().NotBeNull();
        var snapshot = node.Snapshots.Latest!;
        snapshot.Index.Value.Should().BeGreaterThanOrEqualTo(20);
        node.Raft.Status().FirstIndex.Should().Be(new LogIndex(snapshot.Index.Value - 5 + 1));
        node.Store.Load().BaseIndex.Should().Be(new LogIndex(snapshot.Index.Value - 5));
    }

    [Fact]
    public void A_snapshot_is_also_taken_when_the_applied_bytes_pass_their_threshold()
    {
        var node = new Harness(options: new NodeLoopOptions { SnapshotThresholdEntries = 1_000_000, SnapshotThresholdBytes = 4_000, SnapshotKeepEntries = 0 });
        node.ElectSelf();

        for (var i = 0; i < 10; i++)
        {
            node.Run(node.Loop.ProposeAsync(new byte[500]));
        }

        node.Snapshots.Latest.Should().NotBeNull("ten entries of 500 bytes pass a 4,000-byte threshold");
    }

    [Fact]
    public void A_snapshot_waits_until_the_bytes_applied_since_the_last_reach_their_share_of_its_size()
    {
        // The same writes into two nodes: a state of 20 keys of 200 bytes, then 60 small rewrites of one key. With the
        // thresholds alone a snapshot comes every 5 entries; with a share of 1, each waits for as many bytes applied as
        // the last snapshot held (about 4 KB, some 20 large entries or 1,000 small ones).
        int SnapshotsTaken(double share)
        {
            var node = new Harness(options: new NodeLoopOptions { SnapshotThresholdEntries = 5, SnapshotKeepEntries = 0, SnapshotMinAppliedShare = share });
            node.ElectSelf();
            var taken = new HashSet<ulong>();
            for (var i = 0; i < 80; i++)
            {
                node.Run(node.Loop.ProposeAsync(Bytes(i < 20 ? $"k{i}=" + new string('v', 200) : "k0=x")));
                if (node.Snapshots.Latest is { } latest)
                {
                    taken.Add(latest.Index.Value);
                }
            }
            node.StateMachine.Count.Should().Be(20);
            return taken.Count;
        }

        var thresholdsAlone = SnapshotsTaken(0);
        var spaced = SnapshotsTaken(1);

        thresholdsAlone.Should().BeGreaterThanOrEqualTo(14, "80 entries at a threshold of 5");
        spaced.Should().BeInRange(1, 5, "after the large writes, 60 small ones are not worth another copy of the state");
    }

    [Fact]
    public void The_bytes_threshold_bounds_the_log_between_snapshots_whatever_the_share()
    {
        // A share of 16 would wait for 16 times the last snapshot's bytes; the bytes threshold (2,000) comes first.
        var node = new Harness(options: new NodeLoopOptions { SnapshotThresholdEntries = 5, SnapshotThresholdBytes = 2_000, SnapshotKeepEntries = 0, SnapshotMinAppliedShare = 16 });
        node.ElectSelf();
        var taken = new List<ulong>();
        for (var i = 0; i < 40; i++)
        {
            node.Run(node.Loop.ProposeAsync(Bytes($"k{i}=" + new string('v', 200))));
            if (node.Snapshots.Latest is { } latest && (taken.Count == 0 || taken[^1] != latest.Index.Value))
            {
                taken.Add(latest.Index.Value);
            }
        }

        taken.Should().HaveCountGreaterThanOrEqualTo(3, "about 2,000 bytes are 10 entries of 200: a snapshot at least every 10 or so");
        taken.Zip(taken.Skip(1), (a, b) => b - a).Should().OnlyContain(gap => gap <= 11);
    }

    [Fact]
    public void A_compaction_that_fails_in_a_batch_leaves_no_entry_of_that_batch_outside_the_store()
    {
        // Seed 1139668 of the million-seed soak: a snapshot's file was written while a proposal waited; both came in one
        // batch; the compaction behind the snapshot failed (the state file's fsync) before the batch's Ready was handled,
        // and the node stopped with an entry in its core that never reached its store.
        var background = new HeldScheduler();
        var node = new Harness(options: new NodeLoopOptions { SnapshotThresholdEntries = 5, SnapshotKeepEntries = 0 }, background: background);
        node.ElectSelf();
        for (var i = 0; i < 5; i++)
        {
            node.Run(node.Loop.ProposeAsync(Bytes($"k{i}=v")));
        }
        background.Held.Should().ContainSingle("a snapshot is being written");
        node.Store.FailNextCompact = true;

        var proposal = node.Loop.ProposeAsync(Bytes("k=in-the-same-batch"));
        background.RunHeld(); // the snapshot's file is written: its completion waits behind the proposal
        node.Loop.ProcessPending().Should().BeTrue();

        node.Loop.StorageFailure.Should().Contain("EIO");
        node.Store.Load().Entries[^1].Index.Should().Be(node.Raft.LastIndex, "the store holds every entry the core appended");
        Done(proposal).Status.Should().Be(ProposalStatus.Applied, "its entry was persisted and applied before the compaction failed");
    }

    [Fact]
    public void A_restarted_node_starts_its_state_machine_from_the_newest_snapshot()
    {
        var node = new Harness(options: new NodeLoopOptions { SnapshotThresholdEntries = 10, SnapshotKeepEntries = 0 });
        node.ElectSelf();
        for (var i = 0; i < 15; i++)
        {
            node.Run(node.Loop.ProposeAsync(Bytes($"k{i}=v{i}")));
        }
        var hash = node.StateMachine.Hash;

        var state = StartupState.Load(node.Store, node.Snapshots, ClusterConfig.Create([N1]));
        var restarted = new SimStateMachine();
        var raft = new RaftNode(new RaftOptions { Id = N1, RandomSeed = 2 }, state);
        var loop = new RaftLoop(raft, node.Store, node.Snapshots, node.Transport, restarted, new NodeLoopOptions(), new InlineScheduler());
        for (var i = 0; i < 25 && raft.AppliedIndex < raft.LastIndex; i++)
        {
            loop.Tick();
            loop.ProcessPending();
        }

        restarted.Hash.Should().Be(hash);
        restarted.Count.Should().Be(15);
    }

    [Fact]
    public async Task A_ticker_that_wakes_late_still_counts_every_interval_that_passed()
    {
        var time = new FakeTimeProvider();
        var node = new Harness();
        using var stop = new CancellationTokenSource();
        var ticker = Ticker.RunAsync(node.Loop, TimeSpan.FromMilliseconds(100), time, stop.Token);

        // Three seconds pass in one jump: the timer fires once, but 30 intervals went by, enough for an election (10-19 ticks).
        time.Advance(TimeSpan.FromSeconds(3));
        for (var i = 0; i < 200 && node.Raft.Role != Role.Leader; i++)
        {
            await Task.Delay(5);
            node.Loop.ProcessPending();
        }

        node.Raft.Role.Should().Be(Role.Leader);
        await stop.CancelAsync();
        await ticker.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task The_ticker_turns_time_into_ticks_and_a_running_loop_elects_itself()
    {
        var time = new FakeTimeProvider();
        var node = new Harness();
        using var stop = new CancellationTokenSource();
        var loop = node.Loop.RunAsync(stop.Token);
        var ticker = Ticker.RunAsync(node.Loop, TimeSpan.FromMilliseconds(10), time, stop.Token);

        // Each step moves fake time by one tick and waits for the loop to answer a status request.
        var status = await node.Loop.GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(10));
        for (var i = 0; i < 500 && status.Raft.Role != Role.Leader; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(10));
            status = await node.Loop.GetStatusAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        var outcome = await node.Loop.ProposeAsync(Bytes("k=v")).WaitAsync(TimeSpan.FromSeconds(10));

        status.Raft.Role.Should().Be(Role.Leader);
        outcome.Status.Should().Be(ProposalStatus.Applied);
        await stop.CancelAsync();
        await loop.WaitAsync(TimeSpan.FromSeconds(10));
        await ticker.WaitAsync(TimeSpan.FromSeconds(10));
    }
    // ---------------------------------------------------------------- received snapshots are the core's to accept

    private static readonly NodeId N2 = new(2);
    private static readonly NodeId N3 = new(3);

    /// <summary>A snapshot as the transport stages it: bytes written, checked, not committed.</summary>
    private static SnapshotMetadata Receive(Harness node, NodeId from, ulong messageTerm, ulong index, ulong snapshotTerm)
    {
        var metadata = new SnapshotMetadata(new LogIndex(index), new Term(snapshotTerm), ClusterConfig.Create([N1, N2, N3]));
        var staged = node.Snapshots.Create(metadata);
        var state = new SimStateMachine();
        state.Apply(new LogEntry(metadata.Index, metadata.Term, EntryKind.Normal, Bytes($"from-{from}=v")));
        state.CaptureSnapshot().WriteTo(staged.Stream);
        node.Loop.DeliverSnapshot(new InstallSnapshot(from, N1, new Term(messageTerm), metadata), staged);
        while (node.Loop.ProcessPending())
        {
        }
        return metadata;
    }

    [Fact]
    public void A_received_snapshot_becomes_current_only_when_the_core_installs_it()
    {
        var node = new Harness(voters: 3);

        var fromLeader = Receive(node, N2, messageTerm: 5, index: 10, snapshotTerm: 4);

        node.Snapshots.Latest.Should().Be(fromLeader, "the leader of the newest term sent it, past this node's commit");
        node.Raft.Term.Should().Be(new Term(5));
        node.Raft.Leader.Should().Be(N2);
        node.Store.Load().BaseIndex.Should().Be(fromLeader.Index, "the log now starts after the snapshot");
        node.StateMachine.LastApplied.Should().Be(fromLeader.Index, "the state machine was restored from it");
    }

    [Fact]
    public void A_received_snapshot_of_an_older_term_or_not_past_the_commit_is_deleted_and_every_existing_snapshot_stays()
    {
        var node = new Harness(voters: 3);
        var current = Receive(node, N2, messageTerm: 5, index: 10, snapshotTerm: 4);

        // A former leader of term 3, or anyone claiming to be one, with a much longer history.
        Receive(node, N3, messageTerm: 3, index: 50, snapshotTerm: 3);
        // The leader itself, resending an older snapshot (not past the commit).
        Receive(node, N2, messageTerm: 5, index: 8, snapshotTerm: 4);

        node.Snapshots.Latest.Should().Be(current);
        node.Snapshots.Count.Should().Be(1, "neither refused snapshot was ever made current");
        node.Snapshots.TryGetBytes(new SnapshotMetadata(new LogIndex(50), new Term(3), current.Config), out _).Should().BeFalse();
        node.Raft.Term.Should().Be(new Term(5));
        node.Raft.Leader.Should().Be(N2);
        node.Store.Load().BaseIndex.Should().Be(current.Index);
        node.StateMachine.LastApplied.Should().Be(current.Index);
    }

    [Fact]
    public void A_failed_fsync_while_committing_a_received_snapshot_stops_the_node_as_a_storage_failure()
    {
        // The snapshot store's fsync failed with an IOException, which left the loop as an exception of the step instead of
        // stopping the node the way every other storage failure does (found once the simulator staged received snapshots
        // as the real transport does).
        var disk = new SimFileSystem();
        var snapshots = new FileSnapshotStore(disk);
        var store = new MemoryLogStore();
        var config = ClusterConfig.Create([N1, N2, N3]);
        var raft = new RaftNode(new RaftOptions { Id = N1, RandomSeed = 1 }, StartupState.Load(store, snapshots, config));
        var loop = new RaftLoop(raft, store, snapshots, new NoTransport(), new SimStateMachine(), new NodeLoopOptions(), new InlineScheduler());
        var metadata = new SnapshotMetadata(new LogIndex(10), new Term(4), config);
        var staged = snapshots.Create(metadata);
        var state = new SimStateMachine();
        state.Apply(new LogEntry(metadata.Index, metadata.Term, EntryKind.Normal, Bytes("k=v")));
        state.CaptureSnapshot().WriteTo(staged.Stream);
        disk.FailNextSync = true;

        loop.DeliverSnapshot(new InstallSnapshot(N2, N1, new Term(5), metadata), staged);
        var step = () =>
        {
            while (loop.ProcessPending())
            {
            }
        };

        step.Should().NotThrow();
        loop.StorageFailure.Should().Contain("EIO").And.Contain(".tmp");
        snapshots.Latest.Should().BeNull("a snapshot whose fsync failed never becomes current");
        raft.Role.Should().Be(Role.Follower);
    }

    // ---------------------------------------------------------------- buggify: rare paths on purpose, inside the contract

    /// <summary>Fires at the points it is given, once <see cref="Active"/>, at most <see cref="Remaining"/> times.</summary>
    private sealed class ScriptedBuggify(params BuggifyPoint[] points) : IBuggify
    {
        public bool Active { get; set; }

        public int Remaining { get; set; } = int.MaxValue;

        public bool Fires(BuggifyPoint point)
        {
            if (!Active || Remaining == 0 || !points.Contains(point))
            {
                return false;
            }
            Remaining--;
            return true;
        }
    }

    /// <summary>An append from the leader n2 of term 2: one entry at <paramref name="index"/> after the one before it.</summary>
    private static void AppendFromLeader(Harness node, ulong index, ulong commit = 1)
    {
        var previousTerm = index == 2 ? 1UL : 2UL;
        var entry = new LogEntry(new LogIndex(index), new Term(2), EntryKind.Normal, Bytes($"k{index}=v"));
        node.Loop.Deliver(new AppendEntries(N2, N1, new Term(2), new LogIndex(index - 1), new Term(previousTerm), [entry], new LogIndex(commit)));
    }

    private static List<AppendEntriesResponse> Acknowledgements(Harness node) => [.. node.Transport.Sent.OfType<AppendEntriesResponse>()];

    [Fact]
    public void Without_a_buggify_every_turn_takes_its_Ready_and_acknowledges_in_the_same_turn_after_the_fsync()
    {
        var node = new Harness(voters: 3);

        AppendFromLeader(node, 2);
        node.Loop.ProcessPending();

        node.Loop.HoldsReadyBack.Should().BeFalse();
        var ack = Acknowledgements(node).Should().ContainSingle().Subject;
        ack.MatchIndex.Should().Be(new LogIndex(2));
        node.Transport.SyncsBeforeSend[node.Transport.Sent.IndexOf(ack)].Should().Be(node.Store.SyncCount);
        node.Store.Load().LastIndex.Should().Be(new LogIndex(2));
    }

    [Fact]
    public void A_turn_held_back_persists_and_sends_nothing_and_leaves_merged_with_the_next_turn_in_one_fsync()
    {
        var buggify = new ScriptedBuggify(BuggifyPoint.MergeWithNextTurn);
        var node = new Harness(buggify: buggify);
        node.ElectSelf();
        buggify.Active = true;
        var syncsBefore = node.Store.SyncCount;
        var lastBefore = node.Store.Load().LastIndex;

        var first = node.Loop.ProposeAsync(Bytes("a=1"));
        node.Loop.ProcessPending();

        node.Loop.HoldsReadyBack.Should().BeTrue();
        first.IsCompleted.Should().BeFalse();
        node.Store.SyncCount.Should().Be(syncsBefore, "nothing of the held turn is persisted");
        node.Store.Load().LastIndex.Should().Be(lastBefore);

        var second = node.Loop.ProposeAsync(Bytes("b=2"));
        node.Loop.ProcessPending();

        node.Loop.HoldsReadyBack.Should().BeFalse("a turn is never held back twice in a row");
        Done(first).Status.Should().Be(ProposalStatus.Applied);
        Done(second).Status.Should().Be(ProposalStatus.Applied);
        Done(second).Index.Should().Be(Done(first).Index.Next());
        (node.Store.SyncCount - syncsBefore).Should().Be(1, "the two turns' entries share one append and one fsync");
    }

    [Fact]
    public void A_split_turn_persists_each_part_in_a_Ready_of_its_own()
    {
        var buggify = new ScriptedBuggify(BuggifyPoint.SplitBatch);
        var node = new Harness(buggify: buggify);
        node.ElectSelf();
        buggify.Active = true;
        var syncsBefore = node.Store.SyncCount;

        var tasks = Enumerable.Range(0, 3).Select(i => node.Loop.ProposeAsync(Bytes($"k{i}=v"))).ToList();
        node.Loop.ProcessPending();

        tasks.Select(Done).Should().OnlyContain(o => o.Status == ProposalStatus.Applied);
        (node.Store.SyncCount - syncsBefore).Should().Be(3, "split after the first and the second input: three Readys, three fsyncs");
    }

    [Fact]
    public void A_late_acknowledgement_leaves_in_the_next_turn_after_that_turns_fsync_and_before_its_own()
    {
        var buggify = new ScriptedBuggify(BuggifyPoint.AcknowledgeLate) { Active = true, Remaining = 1 };
        var node = new Harness(voters: 3, buggify: buggify);

        AppendFromLeader(node, 2);
        node.Loop.ProcessPending();

        Acknowledgements(node).Should().BeEmpty("the acknowledgement of entry 2 is held");
        node.Store.Load().LastIndex.Should().Be(new LogIndex(2), "entry 2 is persisted all the same");

        AppendFromLeader(node, 3);
        node.Loop.ProcessPending();

        Acknowledgements(node).Select(a => a.MatchIndex.Value).Should().Equal(2UL, 3UL);
        var first = node.Transport.Sent.IndexOf(Acknowledgements(node)[0]);
        node.Transport.SyncsBeforeSend[first].Should().Be(node.Store.SyncCount, "it left after the next turn's fsync, as if both shared it");
    }

    [Fact]
    public void A_late_acknowledgement_of_a_term_the_node_has_left_is_dropped()
    {
        var buggify = new ScriptedBuggify(BuggifyPoint.AcknowledgeLate) { Active = true, Remaining = 1 };
        var node = new Harness(voters: 3, buggify: buggify);

        AppendFromLeader(node, 2);
        node.Loop.ProcessPending();
        node.Loop.Deliver(new Heartbeat(N3, N1, new Term(3), new LogIndex(1), 0));
        node.Loop.ProcessPending();

        node.Raft.Term.Should().Be(new Term(3));
        Acknowledgements(node).Should().NotContain(a => a.Term == new Term(2));
    }

    [Fact]
    public void A_turn_that_received_a_snapshot_is_never_held_back()
    {
        var buggify = new ScriptedBuggify(BuggifyPoint.MergeWithNextTurn) { Active = true };
        var node = new Harness(voters: 3, buggify: buggify);

        var snapshot = Receive(node, N2, messageTerm: 5, index: 10, snapshotTerm: 4);

        node.Snapshots.Latest.Should().Be(snapshot, "its staged file lives for one turn: the core's Ready installs it in that turn");
        node.StateMachine.LastApplied.Should().Be(snapshot.Index);
    }

    [Fact]
    public void A_snapshot_at_an_awkward_moment_is_taken_the_turn_a_configuration_entry_is_appended()
    {
        var buggify = new ScriptedBuggify(BuggifyPoint.SnapshotAtAwkwardMoment);
        var node = new Harness(buggify: buggify);
        node.ElectSelf();
        for (var i = 0; i < 5; i++)
        {
            node.Run(node.Loop.ProposeAsync(Bytes($"k{i}=v")));
        }
        buggify.Active = true;
        node.Run(node.Loop.ProposeAsync(Bytes("k=v")));
        node.Snapshots.Latest.Should().BeNull("an ordinary write is no awkward moment, and the threshold is far");

        var change = node.Run(node.Loop.ChangeMembershipAsync(new ConfChange(ConfChangeKind.AddLearner, N2, "sim://n2")));

        change.Status.Should().Be(ProposalStatus.Applied);
        var snapshot = node.Snapshots.Latest;
        snapshot.Should().NotBeNull();
        snapshot!.Config.Learners.Should().Contain(N2, "it was taken once the change applied, in the same turn");
        node.Raft.Status().FirstIndex.Should().Be(snapshot.Index.Next(), "an early snapshot compacts everything it covers");
    }
}
