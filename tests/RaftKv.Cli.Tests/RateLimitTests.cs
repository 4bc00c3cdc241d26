using System.Net;
using RaftKv.Testing.Processes;

namespace RaftKv.Cli.Tests;

/// <summary>A client address over RaftKv:Node:RateLimitPerSecond gets 429 with Retry-After; /health and the peers never do.</summary>
public sealed class RateLimitTests
{
    [Fact]
    public async Task A_client_over_its_rate_gets_429_while_health_checks_and_the_cluster_go_on()
    {
        await using var cluster = await LocalCluster.StartAsync(3, ["--rate-limit-per-second", "1", "--rate-limit-burst", "2"]);
        // /status is a client route too: a round of status checks every 1.1 s stays within 1 a second per node.
        var slowerThanTheRefill = TimeSpan.FromMilliseconds(1_100);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(30), pollEvery: slowerThanTheRefill);
        await Task.Delay(2_100); // the leader's bucket refills after the status checks above

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? limited = null;
        for (var i = 0; i < 30; i++)
        {
            var response = await leader.Client.GetAsync(new Uri("/kv/k", UriKind.Relative));
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests && limited is null)
            {
                limited = response;
            }
            else
            {
                response.Dispose();
            }
        }
        var health = new List<HttpStatusCode>();
        for (var i = 0; i < 30; i++)
        {
            using var response = await leader.Client.GetAsync(new Uri("/health", UriKind.Relative));
            health.Add(response.StatusCode);
        }

        statuses.Count(s => s == HttpStatusCode.TooManyRequests).Should().BeGreaterThanOrEqualTo(15, "2 at once and 1 a second, asked 30 times in a few seconds");
        statuses.Count(s => s == HttpStatusCode.NotFound).Should().BeGreaterThanOrEqualTo(2, "the first two pass (the key is absent)");
        limited.Should().NotBeNull();
        using (limited)
        {
            limited!.Content.Headers.ContentType!.MediaType.Should().Be("application/problem+json");
            limited.Headers.RetryAfter!.ToString().Should().Be("1");
            (await limited.Content.ReadAsStringAsync()).Should().Contain("RateLimitPerSecond");
        }
        health.Should().OnlyContain(s => s == HttpStatusCode.OK);
        await Task.Delay(2_100); // the bucket refills
        (await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(10), pollEvery: slowerThanTheRefill)).Should().NotBeNull("peers are never limited: the cluster keeps its leader");
    }
}
