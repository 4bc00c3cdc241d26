using System.Net;
using static RaftKv.Server.Tests.Http;

namespace RaftKv.Server.Tests;

/// <summary>GET /kv?prefix=…: pages of keys in order, counts, and each bad query parameter named.</summary>
public sealed class ListApiTests : IClassFixture<ServerFixture>
{
    private readonly ServerFixture _server;

    public ListApiTests(ServerFixture server) => _server = server;

    [Fact]
    public async Task A_prefix_is_listed_in_key_order_a_page_at_a_time()
    {
        var client = await _server.ReadyClientAsync();
        foreach (var key in new[] { "list/b", "list/a", "list/c", "listing", "other" })
        {
            (await client.PutAsync(Url("/kv/" + key), Json("\"" + key + "\""))).EnsureSuccessStatusCode();
        }

        var first = await (await client.GetAsync(Url("/kv?prefix=list/&limit=2"))).BodyAsync();
        var next = first.GetProperty("next").GetString();
        var second = await (await client.GetAsync(Url($"/kv?prefix=list/&limit=2&after={Uri.EscapeDataString(next!)}&consistency=stale"))).BodyAsync();
        var counted = await (await client.GetAsync(Url("/kv?prefix=list&countOnly=true"))).BodyAsync();

        first.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("key").GetString()).Should().Equal("list/a", "list/b");
        first.GetProperty("count").GetInt32().Should().Be(3);
        first.GetProperty("more").GetBoolean().Should().BeTrue();
        next.Should().Be("list/b");
        second.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("key").GetString()).Should().Equal("list/c");
        second.GetProperty("more").GetBoolean().Should().BeFalse();
        second.GetProperty("items")[0].GetProperty("value").GetString().Should().Be("\"list/c\"");
        counted.GetProperty("count").GetInt32().Should().Be(4);
        counted.GetProperty("items").GetArrayLength().Should().Be(0);
        first.GetProperty("index").GetUInt64().Should().BeGreaterThan(0);
    }

    [Theory]
    [InlineData("/kv?limit=0", "limit")]
    [InlineData("/kv?limit=1001", "limit")]
    [InlineData("/kv?limit=ten", "limit")]
    [InlineData("/kv?countOnly=maybe", "countOnly")]
    [InlineData("/kv?consistency=eventual", "consistency")]
    public async Task A_bad_query_parameter_is_named_and_nothing_is_read(string path, string field)
    {
        var client = await _server.ReadyClientAsync();

        var response = await client.GetAsync(Url(path));

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/problem+json");
        (await response.BodyAsync()).GetProperty("field").GetString().Should().Be(field);
    }

    [Fact]
    public async Task A_prefix_longer_than_a_key_may_be_is_refused()
    {
        var client = await _server.ReadyClientAsync();

        var response = await client.GetAsync(Url("/kv?prefix=" + new string('p', 1025)));

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.BodyAsync()).GetProperty("field").GetString().Should().Be("prefix");
    }
}
