using System.Net;
using static RaftKv.Server.Tests.Http;

namespace RaftKv.Server.Tests;

/// <summary>/leases over HTTP on one node: grant, keys written with the lease, keepalive, info, revoke; each bad input named.</summary>
public sealed class LeaseApiTests : IClassFixture<ServerFixture>
{
    private readonly ServerFixture _server;

    public LeaseApiTests(ServerFixture server) => _server = server;

    [Fact]
    public async Task A_revoked_lease_takes_the_keys_written_with_it_by_every_route()
    {
        var client = await _server.ReadyClientAsync();
        var grant = await client.PostAsync(Url("/leases"), Json("""{"ttl":60}"""));
        grant.StatusCode.Should().Be(HttpStatusCode.OK);
        var lease = (await grant.BodyAsync()).GetProperty("id").GetUInt64();

        (await client.PutAsync(Url($"/kv/lease-api/rest?lease={lease}"), new StringContent("1"))).StatusCode.Should().Be(HttpStatusCode.OK);
        (await client.PostAsync(Url("/command"), Json($$"""{"type":"SET","key":"lease-api/command","value":"2","lease":{{lease}}}"""))).StatusCode.Should().Be(HttpStatusCode.OK);
        (await client.PostAsync(Url("/txn"), Json($$"""{"success":[{"type":"PUT","key":"lease-api/txn","value":"3","lease":{{lease}}}]}"""))).StatusCode.Should().Be(HttpStatusCode.OK);
        (await client.PutAsync(Url("/kv/lease-api/plain"), new StringContent("4"))).StatusCode.Should().Be(HttpStatusCode.OK);
        var keepalive = await client.PostAsync(Url($"/leases/{lease}/keepalive"), null);
        var info = await (await client.GetAsync(Url($"/leases/{lease}"))).BodyAsync();

        var revoke = await client.DeleteAsync(Url($"/leases/{lease}"));

        (await keepalive.BodyAsync()).GetProperty("ttl").GetInt64().Should().Be(60);
        info.GetProperty("keys").EnumerateArray().Select(k => k.GetString()).Should().Equal("lease-api/command", "lease-api/rest", "lease-api/txn");
        info.GetProperty("remaining").GetDouble().Should().BeInRange(1, 60);
        revoke.StatusCode.Should().Be(HttpStatusCode.OK);
        (await revoke.BodyAsync()).GetProperty("deleted").GetInt32().Should().Be(3);
        var left = await (await client.GetAsync(Url("/kv?prefix=lease-api/"))).BodyAsync();
        left.GetProperty("items").EnumerateArray().Select(i => i.GetProperty("key").GetString()).Should().Equal("lease-api/plain");
        (await client.GetAsync(Url($"/leases/{lease}"))).StatusCode.Should().Be(HttpStatusCode.NotFound);
        (await client.PostAsync(Url($"/leases/{lease}/keepalive"), null)).StatusCode.Should().Be(HttpStatusCode.NotFound);
        (await client.DeleteAsync(Url($"/leases/{lease}"))).StatusCode.Should().Be(HttpStatusCode.NotFound);
    }

    [Fact]
    public async Task A_write_with_a_lease_that_does_not_exist_is_404_and_writes_nothing()
    {
        var client = await _server.ReadyClientAsync();

        var put = await client.PutAsync(Url("/kv/lease-api/ghost?lease=987654321"), new StringContent("x"));
        var txn = await client.PostAsync(Url("/txn"), Json("""{"success":[{"type":"PUT","key":"lease-api/ghost","value":"x","lease":987654321}]}"""));

        put.StatusCode.Should().Be(HttpStatusCode.NotFound);
        (await put.BodyAsync()).GetProperty("error").GetString().Should().Be("lease_not_found");
        txn.StatusCode.Should().Be(HttpStatusCode.NotFound);
        (await client.GetAsync(Url("/kv/lease-api/ghost"))).StatusCode.Should().Be(HttpStatusCode.NotFound);
    }

    public static TheoryData<string, string, string, int, string> BadRequests => new()
    {
        { "no ttl", "/leases", """{}""", 400, "ttl" },
        { "a ttl of 0", "/leases", """{"ttl":0}""", 400, "ttl" },
        { "a ttl beyond the bound", "/leases", """{"ttl":999999999999}""", 400, "ttl" },
        { "a ttl as text", "/leases", """{"ttl":"ten"}""", 400, "ttl" },
        { "an unknown member", "/leases", """{"ttl":5,"id":7}""", 400, "id" },
        { "a session without seq", "/leases", """{"ttl":5,"clientId":"c"}""", 400, "seq" },
        { "a GET with a lease", "/command", """{"type":"GET","key":"k","lease":1}""", 400, "lease" },
        { "a DELETE with a lease", "/command", """{"type":"DELETE","key":"k","lease":1}""", 400, "lease" },
        { "a txn GET with a lease", "/txn", """{"success":[{"type":"GET","key":"k","lease":1}]}""", 400, "success[0].lease" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task A_bad_lease_request_names_its_field_and_changes_nothing(string what, string path, string body, int status, string field)
    {
        var client = await _server.ReadyClientAsync();

        var response = await client.PostAsync(Url(path), Json(body));

        ((int)response.StatusCode).Should().Be(status, what);
        (await response.BodyAsync()).GetProperty("field").GetString().Should().Be(field, what);
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("0")]
    [InlineData("-1")]
    public async Task A_lease_id_that_is_not_a_number_from_1_is_400_naming_id(string id)
    {
        var client = await _server.ReadyClientAsync();

        var responses = new[]
        {
            await client.PostAsync(Url($"/leases/{id}/keepalive"), null),
            await client.GetAsync(Url($"/leases/{id}")),
            await client.DeleteAsync(Url($"/leases/{id}")),
            await client.PutAsync(Url($"/kv/k?lease={id}"), new StringContent("v")),
        };

        responses.Take(3).Should().OnlyContain(r => r.StatusCode == HttpStatusCode.BadRequest);
        foreach (var response in responses.Take(3))
        {
            (await response.BodyAsync()).GetProperty("field").GetString().Should().Be("id");
        }
        responses[3].StatusCode.Should().Be(id == "0" ? HttpStatusCode.OK : HttpStatusCode.BadRequest, "lease=0 is no lease, as in etcd");
    }
}
