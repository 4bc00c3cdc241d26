using System.Diagnostics;
using System.Net;
using System.Text.Json;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cluster.Tests;

/// <summary>
/// Nodes named by host, as a container platform names them: every URL a node is given (its client URL, its peer URL, the
/// member list) uses a DNS name instead of an address, and the clients dial that name too: "localhost", or a name per node
/// (raftkv-1, …) that only the nodes' own /etc/hosts knows, as 127.0.0.1. Loopback traffic only.
/// </summary>
public sealed class HostNameTests(ITestOutputHelper output)
{
    [SkippableTheory]
    [InlineData(HostNames.Localhost)]
    [InlineData(HostNames.PerNode)]
    public async Task A_cluster_whose_urls_name_hosts_elects_a_leader_and_takes_writes(HostNames names)
    {
        Skip.If(names == HostNames.PerNode && !LocalCluster.CanNameHosts(),
            "each node needs an /etc/hosts of its own (a mount namespace: root and unshare); this machine cannot give one");

        await using var cluster = await LocalCluster.StartAsync(3, names: names);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        output.WriteLine($"leader {leader.NodeId} at {leader.BaseAddress}");

        // Every node dials the others by name.
        for (var slot = 0; slot < 3; slot++)
        {
            var node = cluster.Nodes[slot];
            var host = names == HostNames.Localhost ? "localhost" : LocalCluster.HostNameOf(slot);
            node.BaseAddress.Host.Should().Be(host);
            var status = await node.StatusAsync();
            status.GetProperty("peers").EnumerateArray().Select(p => new Uri(p.GetProperty("address").GetString()!).Host)
                .Should().Equal(Enumerable.Range(0, 3).Where(s => s != slot)
                    .Select(s => names == HostNames.Localhost ? "localhost" : LocalCluster.HostNameOf(s)));
            if (names == HostNames.PerNode)
            {
                // A host name other than localhost is bound as every address; the start-up log says so.
                File.ReadAllText(node.LogPath).Should().Contain(
                    $"serves clients at http://{host}:{node.HttpPort} (bound to every address, port {node.HttpPort}) and peers at http://{host}:{node.PeerPort}/ (bound to every address, port {node.PeerPort})");
            }
        }

        // A write through a follower travels the peer port, dialled by name, to the leader; every node applies it.
        var follower = cluster.Nodes.First(n => n != leader);
        using (var written = await LocalCluster.SetInSessionAsync(follower, "named", "by-host", "host-test", 1))
        {
            written.StatusCode.Should().Be(HttpStatusCode.OK, await written.Content.ReadAsStringAsync());
        }
        (await LocalCluster.GetAsync(leader, "named")).GetProperty("value").GetString().Should().Be("by-host");
        var clock = Stopwatch.StartNew();
        foreach (var node in cluster.Nodes)
        {
            JsonElement read;
            do
            {
                read = await LocalCluster.GetAsync(node, "named", stale: true);
            }
            while (!read.GetProperty("found").GetBoolean() && clock.Elapsed < TimeSpan.FromSeconds(10) && await Delay());
            read.GetProperty("value").GetString().Should().Be("by-host", $"{node.NodeId} applied the write");
        }

        // A client that dialled another port (a published container port, a Service) writes it in Host: still served.
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/status", UriKind.Relative));
        request.Headers.Host = $"raftkv.example:{leader.HttpPort + 10000}";
        using var forwarded = await leader.Client.SendAsync(request);
        forwarded.StatusCode.Should().Be(HttpStatusCode.OK, "the client routes are told apart by the port a connection arrived on");

        // The peer port still serves no client route.
        using var h2c = new HttpClient(cluster.CreateClientHandler());
        using var onPeerPort = new HttpRequestMessage(HttpMethod.Get, new Uri($"http://{leader.Host}:{leader.PeerPort}/status"))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        using var peerAnswer = await h2c.SendAsync(onPeerPort);
        peerAnswer.StatusCode.Should().Be(HttpStatusCode.NotFound);
    }

    private static async Task<bool> Delay()
    {
        await Task.Delay(50);
        return true;
    }
}
