using Microsoft.Extensions.Time.Testing;
using RaftKv.RaftCore;
using RaftKv.Transport;

namespace RaftKv.Hosting.Tests;

/// <summary>Who may open Raft calls to a node: members, members that just left, and nodes a member vouched for.</summary>
public sealed class PeerAdmissionTests
{
    private static readonly NodeId N1 = new(1);
    private static readonly NodeId N2 = new(2);
    private static readonly NodeId N4 = new(4);
    private static readonly NodeId N9 = new(9);
    private static readonly ClusterConfig Three = ClusterConfig.Create([N1, N2, new NodeId(3)]);

    [Fact]
    public void A_member_is_heard_and_a_stranger_is_not()
    {
        var admission = new PeerAdmission(new FakeTimeProvider());

        admission.Check(N2, 7, Three).Should().Be(PeerAdmission.Standing.Member);
        admission.Check(N9, 7, Three).Should().Be(PeerAdmission.Standing.Unknown);
    }

    [Fact]
    public void A_member_that_left_is_heard_for_the_grace_period_only()
    {
        var time = new FakeTimeProvider();
        var admission = new PeerAdmission(time);
        var withoutN2 = ClusterConfig.Create([N1, new NodeId(3)]);

        admission.ConfigChanged(Three, withoutN2);

        admission.Check(N2, 7, withoutN2).Should().Be(PeerAdmission.Standing.JustLeft);
        time.Advance(GrpcTransport.LeftPeerGrace);
        admission.Check(N2, 7, withoutN2).Should().Be(PeerAdmission.Standing.Unknown);
    }

    [Fact]
    public void A_vouched_node_is_heard_with_the_same_incarnation_until_the_vouch_expires()
    {
        var time = new FakeTimeProvider();
        var admission = new PeerAdmission(time);

        admission.StartAsking(N4).Should().BeTrue();
        admission.Answered(N4, 7, "http://127.0.0.1:9084/");

        admission.Check(N4, 7, Three).Should().Be(PeerAdmission.Standing.Vouched);
        admission.Check(N4, 8, Three).Should().Be(PeerAdmission.Standing.Unknown, "another data directory under the same id is not the node vouched for");
        admission.VouchedAddresses().Should().Equal((N4, "http://127.0.0.1:9084/"));
        time.Advance(PeerAdmission.VouchLifetime);
        admission.Check(N4, 7, Three).Should().Be(PeerAdmission.Standing.Unknown);
        admission.VouchedAddresses().Should().BeEmpty();
    }

    [Fact]
    public void A_node_no_member_names_stays_unknown_and_is_asked_about_at_most_once_a_second()
    {
        var time = new FakeTimeProvider();
        var admission = new PeerAdmission(time);

        admission.StartAsking(N9).Should().BeTrue();
        admission.StartAsking(N9).Should().BeFalse("a question about n9 is under way");
        admission.Answered(N9, 7, address: null);
        admission.StartAsking(N9).Should().BeFalse("asked less than a second ago");
        admission.Check(N9, 7, Three).Should().Be(PeerAdmission.Standing.Unknown);
        time.Advance(PeerAdmission.AskInterval);
        admission.StartAsking(N9).Should().BeTrue();
    }

    [Fact]
    public void At_most_MaxStrangers_callers_are_asked_about_within_a_second()
    {
        var time = new FakeTimeProvider();
        var admission = new PeerAdmission(time);

        var asked = Enumerable.Range(100, PeerAdmission.MaxStrangers + 10).Count(i => admission.StartAsking(new NodeId((ulong)i)));

        asked.Should().Be(PeerAdmission.MaxStrangers);
        time.Advance(PeerAdmission.AskInterval);
        admission.StartAsking(new NodeId(500)).Should().BeFalse("the questions before are still under way");
    }
}
