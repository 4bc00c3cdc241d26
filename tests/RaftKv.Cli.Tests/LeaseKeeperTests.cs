using System.Diagnostics;
using RaftKv.Client;
using RaftKv.Contracts;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cli.Tests;

/// <summary>The .NET client's leases and its <see cref="LeaseKeeper"/>, against a real server process.</summary>
[Collection(LeaseServerCollection.Name)]
public sealed class LeaseKeeperTests(LeaseServer server, ITestOutputHelper output)
{
    /// <summary>A client whose first endpoint refuses connections (nothing listens there): every call must find the live one.</summary>
    private RaftKvClient Client() => new(new RaftKvClientOptions
    {
        Endpoints = [new Uri($"http://127.0.0.1:{FreePorts.Take(1)[0]}"), server.Node.BaseAddress],
        Timeout = TimeSpan.FromSeconds(10),
    });

    [Fact]
    public async Task A_lease_kept_by_a_keeper_outlives_its_ttl_and_goes_with_its_key_when_the_keeper_is_disposed()
    {
        using var client = Client();
        var kept = 0;
        var keeper = await client.KeepLeaseAsync(2, new LeaseKeeperOptions { KeptAlive = _ => Interlocked.Increment(ref kept) });
        LeaseInfoResponse? during;
        await using (keeper)
        {
            (await client.SetAsync("keeper/held", "mine", keeper.Id)).Ok.Should().BeTrue();

            await Task.Delay(TimeSpan.FromSeconds(5));

            keeper.Lost.IsCancellationRequested.Should().BeFalse("kept alive every 2/3 s: {0}", keeper);
            (await client.GetAsync("keeper/held")).Value.Should().Be("mine", "the lease outlived its 2 s TTL by being kept alive");
            during = await client.GetLeaseAsync(keeper.Id);
        }

        output.WriteLine($"{kept} keepalives in 5 s for a 2 s TTL; then: {await keeper.WhenLost}");
        kept.Should().BeGreaterThanOrEqualTo(3);
        during!.Keys.Should().Equal("keeper/held");
        during.Ttl.Should().Be(2);
        keeper.Lost.IsCancellationRequested.Should().BeTrue("disposed, the keeper no longer vouches for the lease");
        (await keeper.WhenLost).Reason.Should().Be(LeaseLossReason.Stopped);
        (await client.GetLeaseAsync(keeper.Id)).Should().BeNull("disposing the keeper revoked the lease");
        (await client.GetAsync("keeper/held")).Found.Should().BeFalse("the key went with it");
    }

    [Fact]
    public async Task A_lease_that_is_gone_is_a_null_answer_and_a_write_naming_it_writes_nothing()
    {
        using var client = Client();
        var lease = await client.GrantLeaseAsync(30);
        (await client.SetAsync("gone/a", "1", lease.Id)).Ok.Should().BeTrue();
        (await client.CompareVersionAndSetAsync("gone/b", 0, "2", lease.Id)).Ok.Should().BeTrue();
        var txn = await client.TxnAsync(new TxnRequest { Success = [new TxnOperation { Type = "PUT", Key = "gone/c", Value = "3", Lease = lease.Id }] });
        txn.Succeeded.Should().BeTrue();

        var revoked = await client.RevokeLeaseAsync(lease.Id);

        revoked!.Deleted.Should().Be(3);
        (await client.GetLeaseAsync(lease.Id)).Should().BeNull();
        (await client.KeepAliveLeaseAsync(lease.Id)).Should().BeNull();
        (await client.RevokeLeaseAsync(lease.Id)).Should().BeNull();
        var set = await client.SetAsync("gone/d", "4", lease.Id);
        set.Ok.Should().BeFalse();
        set.LeaseNotFound.Should().BeTrue();
        var late = await client.TxnAsync(new TxnRequest { Success = [new TxnOperation { Type = "PUT", Key = "gone/e", Value = "5", Lease = lease.Id }] });
        late.LeaseNotFound.Should().BeTrue();
        late.Results.Should().BeEmpty();
        (await client.ListAsync("gone/")).Count.Should().Be(0, "nothing was written with the lease that is gone");
        (await client.KeepExistingLeaseAsync(lease.Id)).Should().BeNull();
    }

    [Fact]
    public async Task A_keeper_whose_lease_is_revoked_elsewhere_reports_it_not_found()
    {
        using var client = Client();
        using var other = Client();
        await using var keeper = await client.KeepLeaseAsync(3);

        (await other.RevokeLeaseAsync(keeper.Id)).Should().NotBeNull();
        var loss = await keeper.WhenLost.WaitAsync(TimeSpan.FromSeconds(10));

        loss.Reason.Should().Be(LeaseLossReason.NotFound, loss.Detail);
        keeper.Lost.IsCancellationRequested.Should().BeTrue();
    }

    [Fact]
    public async Task A_keeper_that_gets_no_answer_for_a_whole_ttl_says_the_lease_is_lost()
    {
        using var client = Client();
        await using var keeper = await client.KeepLeaseAsync(2);
        var clock = Stopwatch.StartNew();
        server.Node.Pause(); // SIGSTOP: connections are accepted by the kernel and never answered
        LeaseLoss loss;
        try
        {
            loss = await keeper.WhenLost.WaitAsync(TimeSpan.FromSeconds(10));
        }
        finally
        {
            server.Node.Resume();
        }

        output.WriteLine($"lost {clock.Elapsed.TotalSeconds:F1} s after the server stopped answering (TTL 2 s): {loss.Detail}");
        loss.Reason.Should().Be(LeaseLossReason.Unconfirmed);
        keeper.Lost.IsCancellationRequested.Should().BeTrue();
    }
}
