using RaftKv.Testing.Faults;
using RaftKv.Testing.Linearizability;
using Xunit.Abstractions;

namespace RaftKv.Cluster.Tests;

/// <summary>
/// Jepsen-style runs on real server processes: clients read, write and compare-and-set a few keys while the nemesis
/// kills, pauses and partitions nodes; afterwards every node must hold the same state, no acknowledged write may be
/// missing, and the whole history must be linearizable. The bounded CI version injects each fault kind at least once;
/// `dotnet run -c Release --project bench/RaftKv.Benchmarks -- soak 30` mixes them all for 30 minutes.
/// </summary>
public sealed class FaultInjectionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(2);

    [Fact]
    public async Task Three_nodes_killed_restarted_and_paused_keep_a_linearizable_history()
    {
        var result = await RunAsync(new FaultRunOptions
        {
            Nodes = 3,
            Schedule = [Fault.KillFollower, Fault.KillLeader, Fault.PauseLeader],
            Seed = 11,
        });

        var pause = result.Faults.Single(f => f.Fault == Fault.PauseLeader);
        pause.LeaderDuring.Should().NotBeNull().And.NotBe(pause.LeaderBefore, "the others elect a new leader while the old one is frozen");
        var kill = result.Faults.Single(f => f.Fault == Fault.KillLeader);
        kill.LeaderDuring.Should().NotBeNull().And.NotBe(kill.LeaderBefore);
    }

    [Fact]
    public async Task A_transaction_workload_under_kills_and_pauses_is_linearizable()
    {
        // A third of the operations are transactions on pairs of keys (k0 with k1, k2 with k3): compare-and-write both,
        // read both atomically, write guarded by a version, move one to the other; mixed with plain reads, writes,
        // deletes and compare-and-sets on the same keys. The checker takes each pair as one state, so a torn read, a
        // half-applied transaction or a wrong branch fails the run. Snapshots every 1,000 entries: versions and create
        // revisions also come back through snapshot restores and catch-up.
        var result = await RunAsync(new FaultRunOptions
        {
            Nodes = 3,
            Transactions = 35,
            Schedule = [Fault.KillLeader, Fault.PauseLeader, Fault.KillFollower],
            Hold = TimeSpan.FromSeconds(3),
            Seed = 16,
        });

        result.Counts.TransactionsSucceeded.Should().BeGreaterThan(50, "transactions whose comparisons held ran their success branch");
        result.Counts.TransactionsFailed.Should().BeGreaterThan(50, "and others their failure branch");
        output.WriteLine($"{result.History.Count(o => o.Kind == OperationKind.Txn && o.Unknown)} transactions with unknown outcomes");
        result.Check.Report.Should().Contain("key groups", "the pairs were checked as groups");
    }

    [Fact]
    public async Task Three_nodes_with_tls_and_client_tokens_killed_and_paused_keep_a_linearizable_history()
    {
        // TLS on both ports (mutual between peers) and a bearer token on every client request, so that security is a mode
        // that is tested under faults, not one that is only switched on in production.
        var result = await RunAsync(new FaultRunOptions
        {
            Nodes = 3,
            Secure = true,
            Schedule = [Fault.KillLeader, Fault.PauseLeader, Fault.KillFollower],
            Hold = TimeSpan.FromSeconds(3),
            Seed = 15,
        });

        result.Faults.Single(f => f.Fault == Fault.KillLeader).LeaderDuring.Should().NotBeNull();
    }

    [Fact]
    public async Task Membership_changes_among_kills_and_pauses_keep_a_linearizable_history()
    {
        var result = await RunAsync(new FaultRunOptions
        {
            Nodes = 3,
            Spares = 3,
            Schedule =
            [
                Fault.AddVoter, Fault.KillFollower, Fault.ReplaceNode, Fault.KillLeader, Fault.RemoveVoter, Fault.PauseLeader, Fault.AddVoter,
            ],
            Hold = TimeSpan.FromSeconds(3),
            Seed = 14,
        });

        result.Faults.Where(f => Nemesis.ChangesMembership(f.Fault)).Should().HaveCount(4);
        result.Faults.Single(f => f.Fault == Fault.ReplaceNode).Description.Should().Contain("SIGKILL").And.Contain("promoted");
        result.Faults.Where(f => f.Fault is Fault.RemoveVoter or Fault.ReplaceNode).Should().OnlyContain(f => f.LeaderDuring != null,
            "the cluster has a leader after every change");
    }

    [SkippableFact]
    public async Task Three_nodes_partitioned_keep_a_linearizable_history_and_a_cut_off_leader_steps_down()
    {
        SkipUnlessNetworkLab();

        var result = await RunAsync(new FaultRunOptions
        {
            Nodes = 3,
            Partitions = true,
            Schedule = [Fault.IsolateOne, Fault.SplitMajorityMinority, Fault.CutLeaderFromFollowers],
            Seed = 12,
        });

        // The packets really were dropped: the DROP rules counted them, and the leader cut from its followers (but not
        // from the clients) lost leadership while the other two elected one of their own.
        result.Faults.Should().OnlyContain(f => f.DroppedPackets > 0);
        var cut = result.Faults.Single(f => f.Fault == Fault.CutLeaderFromFollowers);
        cut.StepDown.Should().NotBeNull($"{cut.LeaderBefore} hears from no quorum, so CheckQuorum makes it step down");
        cut.LeaderDuring.Should().NotBeNull().And.NotBe(cut.LeaderBefore);
        var split = result.Faults.Single(f => f.Fault == Fault.SplitMajorityMinority);
        split.LeaderDuring.Should().NotBeNull("the majority side elects a leader").And.NotBe(split.LeaderBefore);
    }

    [SkippableFact]
    public async Task Five_nodes_under_every_fault_kind_and_membership_changes_keep_a_linearizable_history()
    {
        SkipUnlessNetworkLab();

        var result = await RunAsync(new FaultRunOptions
        {
            Nodes = 5,
            Partitions = true,
            Spares = 2,
            Schedule =
            [
                Fault.SplitMajorityMinority, Fault.KillMinority, Fault.ReplaceNode, Fault.CutLeaderFromFollowers, Fault.PauseLeader,
                Fault.RemoveVoter, Fault.IsolateOne, Fault.KillLeader, Fault.AddVoter, Fault.KillFollower,
            ],
            Seed = 13,
        });

        result.Faults.Where(f => Nemesis.NeedsNetwork(f.Fault)).Should().OnlyContain(f => f.DroppedPackets > 0);
        result.Faults.Single(f => f.Fault == Fault.CutLeaderFromFollowers).StepDown.Should().NotBeNull();
        result.Faults.Single(f => f.Fault == Fault.KillMinority).Description.Should().Contain(",", "two of five nodes are killed");
    }

    private async Task<FaultRunResult> RunAsync(FaultRunOptions options)
    {
        using var limit = new CancellationTokenSource(Limit);
        var result = await FaultRun.RunAsync(options, output.WriteLine, limit.Token);
        output.WriteLine(result.ToString());

        result.Faults.Select(f => f.Fault).Should().Equal(options.Schedule, "every scheduled fault was injected");
        result.Counts.AcknowledgedWrites.Should().BeGreaterThan(50, "the clients kept writing through the faults");
        result.Counts.Reads.Should().BeGreaterThan(50, "and reading");
        result.Problems.Should().BeEmpty();
        result.Check.Linearizable.Should().BeTrue(result.Check.Report);
        return result;
    }

    private static void SkipUnlessNetworkLab() =>
        Skip.IfNot(NetworkLab.IsAvailable(out var why), "partitions need network namespaces and iptables: " + why);
}
