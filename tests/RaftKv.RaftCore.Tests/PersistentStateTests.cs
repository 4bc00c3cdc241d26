namespace RaftKv.RaftCore.Tests;

public sealed class PersistentStateTests
{
    private static readonly ClusterConfig Config = ClusterConfig.Create([new NodeId(1), new NodeId(2), new NodeId(3)]);

    private static PersistentState LogWithTerms(ulong term, params ulong[] terms)
    {
        var entries = PersistentState.Bootstrap(Config).Entries
            .Concat(terms.Select((t, i) => new LogEntry(new LogIndex((ulong)i + 2), new Term(t), EntryKind.Normal, new byte[] { 1 })))
            .ToList();
        return new PersistentState(new HardState(new Term(term), NodeId.None, new LogIndex(1)), null, LogIndex.Zero, Term.Zero, entries);
    }

    [Fact]
    public void Bootstrap_is_one_committed_configuration_entry_that_every_member_shares()
    {
        var state = PersistentState.Bootstrap(Config);

        state.Entries.Should().ContainSingle().Which.Kind.Should().Be(EntryKind.Config);
        state.HardState.Should().Be(new HardState(new Term(1), NodeId.None, new LogIndex(1)));
        PersistentState.Bootstrap(Config).Entries[0].Data.ToArray().Should().Equal(state.Entries[0].Data.ToArray());
    }

    [Fact]
    public void A_snapshot_the_log_still_holds_becomes_the_base_for_applying()
    {
        var state = LogWithTerms(2, 1, 2, 2);
        var snapshot = new SnapshotMetadata(new LogIndex(3), new Term(2), Config);

        var joined = state.WithSnapshot(snapshot);

        joined.Entries.Should().HaveCount(4);
        joined.Snapshot.Should().Be(snapshot);
        joined.HardState.Commit.Should().Be(new LogIndex(3));
    }

    [Fact]
    public void A_snapshot_beyond_the_log_replaces_it()
    {
        var state = LogWithTerms(2, 1, 2);
        var snapshot = new SnapshotMetadata(new LogIndex(9), new Term(4), Config);

        var joined = state.WithSnapshot(snapshot);

        joined.Entries.Should().BeEmpty();
        joined.BaseIndex.Should().Be(new LogIndex(9));
        joined.HardState.Should().Be(new HardState(new Term(4), NodeId.None, new LogIndex(9)));
    }

    [Fact]
    public void A_snapshot_that_conflicts_with_the_log_replaces_it()
    {
        // Our entry 3 is of term 2, the snapshot's (committed) entry 3 of term 3: ours was never committed.
        var state = LogWithTerms(3, 1, 2, 2, 2);
        var snapshot = new SnapshotMetadata(new LogIndex(3), new Term(3), Config);

        var joined = state.WithSnapshot(snapshot);

        joined.Entries.Should().BeEmpty();
        joined.BaseIndex.Should().Be(new LogIndex(3));
        joined.HardState.Term.Should().Be(new Term(3));
    }

    [Fact]
    public void A_log_compacted_past_the_newest_snapshot_is_refused()
    {
        var state = new PersistentState(new HardState(new Term(2), NodeId.None, new LogIndex(5)), null, new LogIndex(5), new Term(2), []);

        var join = () => state.WithSnapshot(new SnapshotMetadata(new LogIndex(3), new Term(2), Config));

        join.Should().Throw<StorageException>();
    }

    [Fact]
    public void A_restarted_node_takes_up_the_term_of_entries_that_outlived_their_hard_state()
    {
        // Entries of term 3 survived a crash, the hard state that raised the term to 3 did not.
        var state = LogWithTerms(2, 2, 3);

        var node = new RaftNode(new RaftOptions { Id = new NodeId(1), RandomSeed = 1 }, state);

        node.Term.Should().Be(new Term(3));
        node.Vote.Should().Be(NodeId.None);
    }
}
