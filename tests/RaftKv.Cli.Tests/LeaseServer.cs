using RaftKv.Testing.Processes;

namespace RaftKv.Cli.Tests;

/// <summary>
/// One single-node server, a real process, shared by the lease tests (starting one per test would cost more than the
/// tests): stopped by PID when they are done, failed or not.
/// </summary>
public sealed class LeaseServer : IAsyncLifetime
{
    public LocalCluster Cluster { get; private set; } = null!;

    public ServerProcess Node => Cluster.Nodes[0];

    public string Endpoints { get; private set; } = "";

    public async Task InitializeAsync()
    {
        Cluster = await LocalCluster.StartAsync(1);
        await Cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(15));
        Endpoints = Cli.Endpoints(Cluster);
    }

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class LeaseServerCollection : ICollectionFixture<LeaseServer>
{
    public const string Name = "a lease server";
}
