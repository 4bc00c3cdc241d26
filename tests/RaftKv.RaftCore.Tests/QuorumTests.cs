namespace RaftKv.RaftCore.Tests;

public sealed class QuorumTests
{
    private static NodeId N(int id) => new((ulong)id);

    private static ClusterConfig Voters(params int[] ids) => ClusterConfig.Create(ids.Select(N));

    [Theory]
    // voters' match indexes                  committed
    [InlineData(new ulong[] { 5 }, 5)]
    [InlineData(new ulong[] { 5, 3 }, 3)]
    [InlineData(new ulong[] { 5, 3, 1 }, 3)]
    [InlineData(new ulong[] { 1, 3, 5 }, 3)]
    [InlineData(new ulong[] { 5, 5, 0 }, 5)]
    [InlineData(new ulong[] { 5, 0, 0 }, 0)]
    [InlineData(new ulong[] { 9, 7, 5, 3 }, 5)]
    [InlineData(new ulong[] { 9, 7, 5, 3, 1 }, 5)]
    [InlineData(new ulong[] { 2, 2, 2, 9, 9 }, 2)]
    [InlineData(new ulong[] { 1, 2, 3, 4, 5, 6, 7 }, 4)]
    public void Commit_index_is_the_highest_index_a_majority_holds(ulong[] matches, ulong expected)
    {
        var config = Voters([.. Enumerable.Range(1, matches.Length)]);

        var committed = config.CommittedIndex(id => new LogIndex(matches[id.Value - 1]));

        committed.Should().Be(new LogIndex(expected));
    }

    [Fact]
    public void A_joint_configuration_commits_what_both_majorities_hold()
    {
        // Old voters 1,2,3 hold up to 9, 9, 1; new voters 3,4,5 hold up to 1, 4, 4.
        var joint = ClusterConfig.Create([N(3), N(4), N(5)], outgoingVoters: [N(1), N(2), N(3)]);
        var match = new Dictionary<NodeId, ulong> { [N(1)] = 9, [N(2)] = 9, [N(3)] = 1, [N(4)] = 4, [N(5)] = 4 };

        joint.CommittedIndex(id => new LogIndex(match[id])).Should().Be(new LogIndex(4));
    }

    [Theory]
    // votes: 'y' granted, 'n' refused, '-' no answer
    [InlineData("y", VoteOutcome.Won)]
    [InlineData("n", VoteOutcome.Lost)]
    [InlineData("y--", VoteOutcome.Pending)]
    [InlineData("yy-", VoteOutcome.Won)]
    [InlineData("ynn", VoteOutcome.Lost)]
    [InlineData("yn-", VoteOutcome.Pending)]
    [InlineData("yy--", VoteOutcome.Pending)]
    [InlineData("yyn-", VoteOutcome.Pending)]
    [InlineData("yynn", VoteOutcome.Lost)]
    [InlineData("yyy-", VoteOutcome.Won)]
    [InlineData("yy---", VoteOutcome.Pending)]
    [InlineData("yynnn", VoteOutcome.Lost)]
    public void Votes_are_tallied_against_a_majority(string votes, VoteOutcome expected)
    {
        var config = Voters([.. Enumerable.Range(1, votes.Length)]);

        var outcome = config.Tally(id => votes[(int)id.Value - 1] switch { 'y' => true, 'n' => false, _ => null });

        outcome.Should().Be(expected);
    }

    [Fact]
    public void A_joint_election_needs_both_majorities()
    {
        var joint = ClusterConfig.Create([N(3), N(4), N(5)], outgoingVoters: [N(1), N(2), N(3)]);

        joint.Tally(id => id.Value is 1 or 2 ? true : null).Should().Be(VoteOutcome.Pending);
        joint.Tally(id => id.Value is 1 or 2 or 3 or 4 ? true : null).Should().Be(VoteOutcome.Won);
        joint.Tally(id => id.Value is 4 or 5 ? false : true).Should().Be(VoteOutcome.Lost);
    }

    [Fact]
    public void Learners_never_count_towards_a_quorum()
    {
        var config = ClusterConfig.Create([N(1), N(2), N(3)], learners: [N(4), N(5)]);

        config.CommittedIndex(id => id.Value >= 3 ? new LogIndex(7) : LogIndex.Zero).Should().Be(LogIndex.Zero);
        config.IsVoter(N(4)).Should().BeFalse();
        config.Members.Should().HaveCount(5);
    }

    [Fact]
    public void A_configuration_round_trips_through_its_encoding()
    {
        var config = ClusterConfig.Create([N(1), N(2), N(7)], learners: [N(9)], outgoingVoters: [N(1), N(2), N(3)]);

        ClusterConfig.Decode(config.Encode()).Should().Be(config);
        config.ToString().Should().Be("voters=(n1 n2 n7) learners=(n9) outgoing=(n1 n2 n3)");
    }

    [Fact]
    public void Member_addresses_round_trip_and_a_version_1_configuration_still_decodes()
    {
        var config = ClusterConfig.Create([N(1), N(2)], learners: [N(3)], addresses: [new(N(1), "http://a:1 http://a:2"), new(N(3), "ünïcode")]);

        var decoded = ClusterConfig.Decode(config.Encode());

        decoded.Should().Be(config);
        decoded.Addresses[N(3)].Should().Be("ünïcode");
        decoded.Should().NotBe(ClusterConfig.Create([N(1), N(2)], learners: [N(3)]), "addresses are part of a configuration");
        var version1 = new byte[] { 1, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
        ClusterConfig.Decode(version1).Should().Be(ClusterConfig.Create([N(5)]));
    }

    [Fact]
    public void Joint_consensus_enters_with_both_majorities_and_leaves_with_the_new_one_and_only_its_addresses()
    {
        var config = ClusterConfig.Create([N(1), N(2), N(3)], addresses: [new(N(1), "a1"), new(N(2), "a2"), new(N(3), "a3")]);

        var joint = config.EnterJoint([N(1), N(2)]);
        var final = joint.LeaveJoint();

        joint.IsJoint.Should().BeTrue();
        joint.OutgoingVoters.Should().Equal(N(1), N(2), N(3));
        joint.Addresses.Should().ContainKey(N(3), "an outgoing voter is still reached during the joint phase");
        final.IsJoint.Should().BeFalse();
        final.Voters.Should().Equal(N(1), N(2));
        final.Addresses.Keys.Should().Equal(N(1), N(2));
    }

    [Fact]
    public void An_address_for_a_node_that_is_not_a_member_is_refused_when_decoded()
    {
        var encoded = ClusterConfig.Create([N(1)], addresses: [new(N(1), "x")]).Encode();
        encoded[^13] = 2; // the address's node id (8 bytes, then length 1 and "x"): n1 becomes n2

        var decode = () => ClusterConfig.Decode(encoded);

        decode.Should().Throw<FormatException>().WithMessage("*not a member*");
    }

    [Theory]
    [InlineData(new byte[0])]
    [InlineData(new byte[] { 9 })]
    [InlineData(new byte[] { 1, 1, 0, 0 })]
    [InlineData(new byte[] { 1, 200, 0, 0, 0, 1, 2 })]
    [InlineData(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 })]
    [InlineData(new byte[] { 2, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 })]
    [InlineData(new byte[] { 2, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0 })]
    [InlineData(new byte[] { 1, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 })]
    public void Damaged_configuration_bytes_are_refused(byte[] data)
    {
        var decode = () => ClusterConfig.Decode(data);

        decode.Should().Throw<FormatException>();
    }
}
