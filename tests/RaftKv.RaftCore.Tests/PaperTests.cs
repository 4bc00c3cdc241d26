namespace RaftKv.RaftCore.Tests;

/// <summary>Sentences of the Raft paper and dissertation, each checked on pure nodes.</summary>
public sealed class PaperTests
{
    private static readonly NodeId N1 = new(1), N2 = new(2), N3 = new(3);

    private static RequestVote Vote(NodeId from, ulong term, ulong lastIndex, ulong lastTerm, bool preVote = false) =>
        new(from, N1, new Term(term), new LogIndex(lastIndex), new Term(lastTerm), preVote);

    private static T Single<T>(Ready ready) where T : Message =>
        ready.Messages.Concat(ready.MessagesAfterPersist).OfType<T>().Should().ContainSingle().Subject;

    [Fact]
    public void A_follower_never_acknowledges_entries_that_a_later_term_replaced_before_they_were_persisted()
    {
        // Seed 1726339: in one batch, the leader of term 2 appends i2-i3 and the leader of term 3 then replaces them with
        // its no-op at i2. The Ready persists i2/t3 only, so the term-2 acknowledgement of i3 would be a lie.
        var node = new TestCluster(3, o => o with { PreVote = false })[1];
        var bootstrap = LogIndex.Zero.Next();
        LogEntry Entry(ulong index, ulong term) => new(new LogIndex(index), new Term(term), EntryKind.Normal, new byte[] { (byte)index });

        node.Step(new AppendEntries(N2, N1, new Term(2), bootstrap, new Term(1), [Entry(2, 2), Entry(3, 2)], LogIndex.Zero));
        node.Step(new AppendEntries(N3, N1, new Term(3), bootstrap, new Term(1), [Entry(2, 3)], LogIndex.Zero));
        var ready = node.GetReady();

        ready.Entries.Select(e => (e.Index.Value, e.Term.Value)).Should().Equal([(2UL, 3UL)]);
        var acknowledged = ready.Messages.Concat(ready.MessagesAfterPersist).OfType<AppendEntriesResponse>().Where(r => r.Success).ToList();
        acknowledged.Should().OnlyContain(r => r.Term == new Term(3) && r.MatchIndex == new LogIndex(2), "only what this Ready persists is acknowledged");
        acknowledged.Should().ContainSingle();
    }

    [Fact]
    public void A_node_grants_at_most_one_vote_per_term()
    {
        var cluster = new TestCluster(3, o => o with { PreVote = false });
        var node = cluster[1];

        node.Step(Vote(N2, term: 2, lastIndex: 1, lastTerm: 1));
        Single<RequestVoteResponse>(node.GetReady()).Granted.Should().BeTrue();

        node.Step(Vote(N3, term: 2, lastIndex: 1, lastTerm: 1));
        var second = node.GetReady();
        Single<RequestVoteResponse>(second).Granted.Should().BeFalse();
        node.Vote.Should().Be(N2);
    }

    [Fact]
    public void The_only_voter_leads_after_its_first_tick_while_one_of_three_still_waits_for_its_election_timeout()
    {
        var alone = new RaftNode(new RaftOptions { Id = N1, RandomSeed = 1 }, PersistentState.Bootstrap(ClusterConfig.Create([N1], learners: [N2])));
        var ofThree = new TestCluster(3)[1];

        foreach (var node in new[] { alone, ofThree })
        {
            node.Tick();
            while (node.HasReady)
            {
                node.Advance(node.GetReady());
            }
        }

        alone.Role.Should().Be(Role.Leader, "nobody else's vote is needed");
        ofThree.Role.Should().Be(Role.Follower);
    }

    [Fact]
    public void A_vote_is_persisted_before_it_is_sent()
    {
        var node = new TestCluster(3, o => o with { PreVote = false })[1];

        node.Step(Vote(N2, term: 2, lastIndex: 1, lastTerm: 1));
        var ready = node.GetReady();

        ready.MustSync.Should().BeTrue();
        ready.HardState.Should().Be(new HardState(new Term(2), N2, new LogIndex(1)));
        ready.Messages.Should().BeEmpty();
        ready.MessagesAfterPersist.Should().ContainSingle().Which.Should().BeOfType<RequestVoteResponse>();
    }

    [Theory]
    [InlineData(1, 1, false)] // shorter log, same last term
    [InlineData(3, 1, false)] // longer log but older last term
    [InlineData(2, 2, true)] // the same log
    [InlineData(1, 3, true)] // a later last term wins, whatever the length
    public void A_vote_goes_only_to_a_log_at_least_as_up_to_date(ulong lastIndex, ulong lastTerm, bool granted)
    {
        // No CheckQuorum: a follower that heard from its leader would otherwise ignore the request altogether.
        var cluster = new TestCluster(3, o => o with { PreVote = false, CheckQuorum = false });
        cluster.ElectLeader(2); // everyone now holds 1/1 and the no-op 2/2
        var node = cluster[1];

        node.Step(new RequestVote(N3, N1, new Term(3), new LogIndex(lastIndex), new Term(lastTerm), PreVote: false));

        Single<RequestVoteResponse>(node.GetReady()).Granted.Should().Be(granted);
    }

    [Fact]
    public void Leader_only_commits_entries_from_its_own_term_by_counting_replicas()
    {
        // n1 holds an entry of term 2 that never committed; as leader of term 3 it must not commit it by counting,
        // only together with its own no-op of term 3.
        var config = ClusterConfig.Create([N1, N2, N3]);
        var bootstrap = PersistentState.Bootstrap(config);
        var entries = bootstrap.Entries.Append(new LogEntry(new LogIndex(2), new Term(2), EntryKind.Normal, new byte[] { 1 })).ToList();
        var state = new PersistentState(new HardState(new Term(2), NodeId.None, new LogIndex(1)), null, LogIndex.Zero, Term.Zero, entries);
        var node = new RaftNode(new RaftOptions { Id = N1, RandomSeed = 1, PreVote = false }, state);

        node.Campaign();
        _ = node.GetReady();
        node.Step(new RequestVoteResponse(N2, N1, new Term(3), Granted: true, PreVote: false));
        node.Role.Should().Be(Role.Leader);
        var ready = node.GetReady();
        node.Advance(ready);

        // n2 acknowledges index 2 (the term-2 entry) only: a majority holds it, yet it is not committed.
        node.Step(new AppendEntriesResponse(N2, N1, new Term(3), true, new LogIndex(2), LogIndex.Zero, Term.Zero));
        node.CommitIndex.Value.Should().Be(1UL);

        // n2 acknowledges the no-op of term 3 at index 3: now both commit.
        node.Step(new AppendEntriesResponse(N2, N1, new Term(3), true, new LogIndex(3), LogIndex.Zero, Term.Zero));
        node.CommitIndex.Value.Should().Be(3UL);
    }

    [Fact]
    public void Proposals_made_between_two_readys_leave_in_one_append_per_follower()
    {
        var cluster = new TestCluster(3);
        var leader = cluster.ElectLeader(1);
        cluster.Sent.Clear();

        for (var i = 0; i < 10; i++)
        {
            leader.Propose(new byte[] { (byte)i }).Status.Should().Be(ProposeStatus.Accepted);
        }
        var ready = leader.GetReady();

        ready.Entries.Should().HaveCount(10);
        var appends = ready.Messages.OfType<AppendEntries>().ToList();
        appends.Select(a => a.To).Should().BeEquivalentTo([N2, N3]);
        appends.Should().OnlyContain(a => a.Entries.Count == 10);
    }

    [Fact]
    public void A_follower_refuses_proposals_and_names_the_leader()
    {
        var cluster = new TestCluster(3);
        cluster.ElectLeader(1);

        var result = cluster[2].Propose(new byte[] { 1 });

        result.Status.Should().Be(ProposeStatus.NotLeader);
        result.LeaderHint.Should().Be(N1);
    }

    [Fact]
    public void Reads_waiting_together_share_one_heartbeat_round()
    {
        var cluster = new TestCluster(3);
        var leader = cluster.ElectLeader(1);
        cluster.Sent.Clear();

        leader.ReadIndex(1, out _).Should().BeTrue();
        leader.ReadIndex(2, out _).Should().BeTrue();
        leader.ReadIndex(3, out _).Should().BeTrue();
        cluster.Stabilize();

        cluster.Sent.OfType<Heartbeat>().Where(h => h.ReadRound > 0).Should().HaveCount(2, "one heartbeat per follower");
        cluster.ReadStates.Should().HaveCount(3).And.OnlyContain(r => r.Status == ReadStatus.Confirmed && r.Index == leader.CommitIndex);
    }

    [Fact]
    public void A_new_leader_serves_reads_only_after_committing_an_entry_of_its_term()
    {
        var cluster = new TestCluster(3);
        cluster[1].Campaign();
        // Run the election but keep the leader's first appends from arriving.
        while (cluster[1].Role != Role.Leader)
        {
            cluster.Stabilize();
        }
        cluster.Isolate(1);
        var leader = cluster[1];
        leader.ReadIndex(7, out _).Should().BeTrue();
        cluster.Stabilize();
        cluster.ReadStates.Should().BeEmpty("the no-op of term 2 is not committed yet");

        cluster.Heal();
        leader.Tick();
        cluster.Stabilize();

        cluster.ReadStates.Should().ContainSingle().Which.Status.Should().Be(ReadStatus.Confirmed);
    }

    [Fact]
    public void A_healthy_follower_is_pipelined_to_and_a_lagging_one_is_probed()
    {
        var cluster = new TestCluster(3, o => o with { MaxAppendBytes = 1 });
        var leader = cluster.ElectLeader(1);
        leader.ReportUnreachable(N3); // the transport lost n3: probe it instead of streaming to it
        for (var i = 0; i < 5; i++)
        {
            leader.Propose(new byte[] { (byte)i });
        }

        var ready = leader.GetReady();

        var status = leader.Status().Peers.ToDictionary(p => p.Id);
        status[N2].State.Should().Be(ReplicationState.Replicate);
        status[N3].State.Should().Be(ReplicationState.Probe);
        ready.Messages.OfType<AppendEntries>().Count(a => a.To == N2).Should().Be(5, "one entry per message, all sent at once");
        ready.Messages.OfType<AppendEntries>().Count(a => a.To == N3).Should().Be(1, "one probe, then wait for its answer");
    }

    [Fact]
    public void A_full_window_of_inflight_appends_pauses_the_follower()
    {
        var cluster = new TestCluster(3, o => o with { MaxAppendBytes = 1, MaxInflightAppends = 2 });
        var leader = cluster.ElectLeader(1);
        cluster.Isolate(2);
        cluster.Isolate(3);
        for (var i = 0; i < 5; i++)
        {
            leader.Propose(new byte[] { (byte)i });
        }

        var ready = leader.GetReady();

        ready.Messages.OfType<AppendEntries>().Count(a => a.To == N2).Should().Be(2, "the window holds two appends");
    }

    [Fact]
    public void Status_reports_what_it_knows()
    {
        var cluster = new TestCluster(3);
        var leader = cluster.ElectLeader(2);

        var status = leader.Status();

        status.Role.Should().Be(Role.Leader);
        status.Leader.Should().Be(N2);
        status.Peers.Select(p => p.Id).Should().Equal(N1, N3);
        status.Peers.Should().OnlyContain(p => p.Match == status.LastIndex);
    }

    [Fact]
    public void A_voter_leaving_through_a_joint_configuration_may_still_campaign()
    {
        // Dissertation §4.3: in C(old,new) the outgoing voters are voters too. The simulator found a cluster stuck without a
        // leader: the leader died mid-change, and only the nodes being removed held the newest entries.
        var joint = ClusterConfig.Create([N2, N3], outgoingVoters: [N1, N2, N3]);
        var state = new PersistentState(new HardState(new Term(2), NodeId.None, new LogIndex(1)), null, LogIndex.Zero, Term.Zero,
            [.. PersistentState.Bootstrap(ClusterConfig.Create([N1, N2, N3])).Entries, new LogEntry(new LogIndex(2), new Term(2), EntryKind.Config, joint.Encode())]);
        var node = new RaftNode(new RaftOptions { Id = N1, RandomSeed = 1, PreVote = false }, state);

        node.Campaign();

        node.Role.Should().Be(Role.Candidate);
        var ready = node.GetReady();
        ready.Messages.Concat(ready.MessagesAfterPersist).OfType<RequestVote>().Select(m => m.To).Should().BeEquivalentTo([N2, N3]);
    }
}
