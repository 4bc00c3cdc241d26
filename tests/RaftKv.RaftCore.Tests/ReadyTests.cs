namespace RaftKv.RaftCore.Tests;

/// <summary>The Ready contract: asking whether there is work changes nothing; taking it is the explicit step.</summary>
public sealed class ReadyTests
{
    [Fact]
    public void Asking_HasReady_any_number_of_times_changes_nothing_a_leader_sends()
    {
        // Between the two proposals one leader is asked five times; had asking sent the first append, the second entry
        // would go out in an append of its own instead of sharing one with the first.
        var asked = LeaderWithWork(leader =>
        {
            for (var i = 0; i < 5; i++)
            {
                leader.HasReady.Should().BeTrue("a proposal waits to be sent");
            }
        });
        var notAsked = LeaderWithWork(_ => { });

        var sent = Describe(asked.GetReady());

        sent.Should().Equal(Describe(notAsked.GetReady()));
        sent.Count(m => m.Contains("AppendEntries", StringComparison.Ordinal)).Should().Be(2, "one append per follower carries both entries");
    }

    [Fact]
    public void Appends_and_read_rounds_are_sent_by_GetReady_and_then_there_is_nothing_left()
    {
        var leader = LeaderWithWork(_ => { });

        var ready = leader.GetReady();
        leader.Advance(ready);

        ready.Messages.Should().Contain(m => m is AppendEntries).And.Contain(m => m is Heartbeat);
        leader.HasReady.Should().BeFalse();
    }

    /// <summary>A leader of three, caught up, with two proposals and a read stepped but nothing taken yet.</summary>
    private static RaftNode LeaderWithWork(Action<RaftNode> betweenProposals)
    {
        var cluster = new TestCluster(3);
        var leader = cluster.ElectLeader(1);
        cluster.Stabilize();
        leader.Propose(new byte[] { 1 });
        betweenProposals(leader);
        leader.Propose(new byte[] { 2 });
        leader.ReadIndex(7, out _).Should().BeTrue();
        return leader;
    }

    private static List<string> Describe(Ready ready) =>
        [.. ready.Messages.Select(m => m.ToString()!), .. ready.Entries.Select(e => e.ToString()!), ready.MustSync.ToString()];
}
