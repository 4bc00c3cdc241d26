using System.Net;
using static RaftKv.Server.Tests.Http;

namespace RaftKv.Server.Tests;

public sealed class CommandApiTests : IClassFixture<ServerFixture>
{
    private readonly ServerFixture _server;

    public CommandApiTests(ServerFixture server) => _server = server;

    [Fact]
    public async Task A_set_is_read_back_as_written_with_its_version()
    {
        var client = await _server.ReadyClientAsync();

        var set = await client.PostAsync(Url("/command"), Json("""{"type": "SET", "key": "test", "value": "hello"}"""));
        var get = await client.PostAsync(Url("/command"), Json("""{"type": "GET", "key": "test"}"""));

        set.StatusCode.Should().Be(HttpStatusCode.OK);
        var written = await set.BodyAsync();
        written.GetProperty("ok").GetBoolean().Should().BeTrue();
        written.GetProperty("leader").GetString().Should().Be("n1");
        set.Headers.GetValues("X-Raft-Leader").Should().Equal("n1");
        var read = await get.BodyAsync();
        read.GetProperty("value").GetString().Should().Be("hello");
        read.GetProperty("found").GetBoolean().Should().BeTrue();
        read.GetProperty("version").GetUInt64().Should().Be(written.GetProperty("index").GetUInt64());
    }

    [Fact]
    public async Task Delete_removes_a_key_and_says_whether_it_was_there()
    {
        var client = await _server.ReadyClientAsync();
        await client.PostAsync(Url("/command"), Json("""{"type":"SET","key":"gone","value":"x"}"""));

        var first = await (await client.PostAsync(Url("/command"), Json("""{"type":"DELETE","key":"gone"}"""))).BodyAsync();
        var second = await (await client.PostAsync(Url("/command"), Json("""{"type":"DELETE","key":"gone"}"""))).BodyAsync();
        var read = await (await client.PostAsync(Url("/command"), Json("""{"type":"GET","key":"gone"}"""))).BodyAsync();

        first.GetProperty("found").GetBoolean().Should().BeTrue();
        second.GetProperty("found").GetBoolean().Should().BeFalse();
        read.GetProperty("found").GetBoolean().Should().BeFalse();
    }

    [Fact]
    public async Task Cas_sets_only_when_the_value_or_version_matches()
    {
        var client = await _server.ReadyClientAsync();
        var created = await (await client.PostAsync(Url("/command"), Json("""{"type":"CAS","key":"c","expectedVersion":0,"value":"one"}"""))).BodyAsync();
        var version = created.GetProperty("version").GetUInt64();

        var byValue = await client.PostAsync(Url("/command"), Json("""{"type":"CAS","key":"c","expected":"one","value":"two"}"""));
        var mismatch = await client.PostAsync(Url("/command"), Json("""{"type":"CAS","key":"c","expected":"one","value":"three"}"""));
        var staleVersion = await client.PostAsync(Url("/command"), Json($$"""{"type":"CAS","key":"c","expectedVersion":{{version}},"value":"four"}"""));

        created.GetProperty("ok").GetBoolean().Should().BeTrue();
        byValue.StatusCode.Should().Be(HttpStatusCode.OK);
        mismatch.StatusCode.Should().Be(HttpStatusCode.Conflict);
        var body = await mismatch.BodyAsync();
        body.GetProperty("ok").GetBoolean().Should().BeFalse();
        body.GetProperty("error").GetString().Should().Be("cas_mismatch");
        body.GetProperty("value").GetString().Should().Be("two", "a mismatch returns the current value");
        staleVersion.StatusCode.Should().Be(HttpStatusCode.Conflict);
    }

    [Fact]
    public async Task A_write_retried_with_the_same_session_is_applied_once()
    {
        var client = await _server.ReadyClientAsync();
        var request = """{"type":"SET","key":"s","value":"v1","clientId":"client-a","seq":1}""";

        var first = await (await client.PostAsync(Url("/command"), Json(request))).BodyAsync();
        await client.PostAsync(Url("/command"), Json("""{"type":"SET","key":"s","value":"other"}"""));
        var retry = await (await client.PostAsync(Url("/command"), Json(request))).BodyAsync();
        var read = await (await client.PostAsync(Url("/command"), Json("""{"type":"GET","key":"s"}"""))).BodyAsync();

        retry.GetProperty("index").GetUInt64().Should().Be(first.GetProperty("index").GetUInt64(), "the retry gets the saved answer");
        read.GetProperty("value").GetString().Should().Be("other", "the retry did not write v1 again");
    }

    [Fact]
    public async Task A_sequence_number_below_the_last_one_is_refused()
    {
        var client = await _server.ReadyClientAsync();
        await client.PostAsync(Url("/command"), Json("""{"type":"SET","key":"q","value":"1","clientId":"client-b","seq":5}"""));

        var old = await client.PostAsync(Url("/command"), Json("""{"type":"SET","key":"q","value":"0","clientId":"client-b","seq":4}"""));

        old.StatusCode.Should().Be(HttpStatusCode.Conflict);
        (await old.BodyAsync()).GetProperty("error").GetString().Should().Be("stale_sequence");
    }

    [Fact]
    public async Task A_stale_read_is_served_from_what_this_node_applied()
    {
        var client = await _server.ReadyClientAsync();
        await client.PostAsync(Url("/command"), Json("""{"type":"SET","key":"st","value":"x"}"""));

        var read = await client.PostAsync(Url("/command"), Json("""{"type":"GET","key":"st","consistency":"stale"}"""));

        (await read.BodyAsync()).GetProperty("value").GetString().Should().Be("x");
    }

    [Fact]
    public async Task The_kv_resource_serves_curl_users()
    {
        var client = await _server.ReadyClientAsync();

        var put = await client.PutAsync(Url("/kv/dir/file"), new StringContent("contents"));
        var get = await client.GetAsync(Url("/kv/dir/file"));
        var stale = await client.GetAsync(Url("/kv/dir/file?consistency=stale"));
        var delete = await client.DeleteAsync(Url("/kv/dir/file"));
        var missing = await client.GetAsync(Url("/kv/dir/file"));
        var session = await client.PutAsync(Url("/kv/sess?clientId=kv-client&seq=1"), new StringContent("a"));
        var sessionRetry = await client.PutAsync(Url("/kv/sess?clientId=kv-client&seq=1"), new StringContent("a"));

        put.StatusCode.Should().Be(HttpStatusCode.OK);
        (await get.BodyAsync()).GetProperty("value").GetString().Should().Be("contents");
        stale.StatusCode.Should().Be(HttpStatusCode.OK);
        delete.StatusCode.Should().Be(HttpStatusCode.OK);
        missing.StatusCode.Should().Be(HttpStatusCode.NotFound);
        (await missing.BodyAsync()).GetProperty("found").GetBoolean().Should().BeFalse();
        (await sessionRetry.BodyAsync()).GetProperty("index").GetUInt64().Should().Be((await session.BodyAsync()).GetProperty("index").GetUInt64());
    }

    [Fact]
    public async Task Status_names_the_node_its_role_and_its_log()
    {
        var client = await _server.ReadyClientAsync();
        await client.PostAsync(Url("/command"), Json("""{"type":"SET","key":"st1","value":"x"}"""));

        var status = await (await client.GetAsync(Url("/status?digest=true"))).BodyAsync();

        status.GetProperty("nodeId").GetString().Should().Be("n1");
        status.GetProperty("role").GetString().Should().Be("Leader");
        status.GetProperty("leader").GetString().Should().Be("n1");
        status.GetProperty("commit").GetUInt64().Should().BeGreaterThan(1);
        status.GetProperty("applied").GetUInt64().Should().Be(status.GetProperty("commit").GetUInt64());
        status.GetProperty("lastIndex").GetUInt64().Should().BeGreaterThanOrEqualTo(status.GetProperty("commit").GetUInt64());
        status.GetProperty("snapshotIndex").GetUInt64().Should().Be(0);
        status.GetProperty("voters").EnumerateArray().Select(v => v.GetString()).Should().Equal("n1");
        status.GetProperty("storage").GetProperty("failed").GetBoolean().Should().BeFalse();
        status.GetProperty("digest").GetString().Should().MatchRegex("^[0-9a-f]{16}$");
    }

    [Fact]
    public async Task Health_and_readiness_answer()
    {
        var client = await _server.ReadyClientAsync();

        var live = await client.GetAsync(Url("/health"));
        var ready = await client.GetAsync(Url("/health/ready"));

        live.StatusCode.Should().Be(HttpStatusCode.OK);
        ready.StatusCode.Should().Be(HttpStatusCode.OK);
        (await ready.BodyAsync()).GetProperty("detail").GetString().Should().Contain("leader n1");
    }

    [Fact]
    public async Task Metrics_are_served_in_the_prometheus_text_format()
    {
        var client = await _server.ReadyClientAsync();
        await client.PostAsync(Url("/command"), Json("""{"type":"SET","key":"m","value":"x"}"""));

        var metrics = await client.GetStringAsync(Url("/metrics"));

        metrics.Should().Contain("# TYPE raftkv_term gauge");
        metrics.Should().Contain("raftkv_role{role=\"leader\"} 1");
        metrics.Should().Contain("raftkv_proposals_total{outcome=\"applied\"}");
        metrics.Should().Contain("raftkv_fsync_seconds_bucket");
        metrics.Should().Contain("raftkv_commit_seconds_count");
        metrics.Should().Contain("raftkv_apply_seconds_count");
        metrics.Should().Contain("http_requests_received_total");
    }
}
