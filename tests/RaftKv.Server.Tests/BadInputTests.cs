using System.Net;
using System.Text;
using static RaftKv.Server.Tests.Http;

namespace RaftKv.Server.Tests;

/// <summary>Bad input gets a problem+json naming the field, changes nothing, and the server keeps serving.</summary>
public sealed class BadInputTests : IClassFixture<ServerFixture>
{
    private readonly ServerFixture _server;

    public BadInputTests(ServerFixture server) => _server = server;

    public static TheoryData<string, string, int, string> BadCommands => new()
    {
        // description, body, status, field
        { "malformed JSON", """{"type": "SET", "key": """, 400, "body" },
        { "not an object", """[1, 2]""", 400, "body" },
        { "an unknown property", """{"type":"SET","key":"k","value":"v","colour":"red"}""", 400, "colour" },
        { "a number where text goes", """{"type":"SET","key":7,"value":"v"}""", 400, "key" },
        { "no type", """{"key":"k","value":"v"}""", 400, "type" },
        { "an unknown type", """{"type":"INCREMENT","key":"k"}""", 400, "type" },
        { "no key", """{"type":"SET","value":"v"}""", 400, "key" },
        { "an empty key", """{"type":"SET","key":"","value":"v"}""", 400, "key" },
        { "a key over 1 KiB", $$"""{"type":"SET","key":"{{new string('k', 1025)}}","value":"v"}""", 400, "key" },
        { "a value over 1 MiB", $$"""{"type":"SET","key":"k","value":"{{new string('v', (1024 * 1024) + 1)}}"}""", 413, "value" },
        { "SET without a value", """{"type":"SET","key":"k"}""", 400, "value" },
        { "GET with a value", """{"type":"GET","key":"k","value":"v"}""", 400, "value" },
        { "CAS without expected", """{"type":"CAS","key":"k","value":"v"}""", 400, "expected" },
        { "expected outside CAS", """{"type":"SET","key":"k","value":"v","expected":"w"}""", 400, "expected" },
        { "clientId without seq", """{"type":"SET","key":"k","value":"v","clientId":"c"}""", 400, "seq" },
        { "seq without clientId", """{"type":"SET","key":"k","value":"v","seq":3}""", 400, "clientId" },
        { "seq zero", """{"type":"SET","key":"k","value":"v","clientId":"c","seq":0}""", 400, "seq" },
        { "a negative seq", """{"type":"SET","key":"k","value":"v","clientId":"c","seq":-1}""", 400, "seq" },
        { "an unknown consistency", """{"type":"GET","key":"k","consistency":"eventual"}""", 400, "consistency" },
        { "a stale write", """{"type":"SET","key":"k","value":"v","consistency":"stale"}""", 400, "consistency" },
    };

    [Theory]
    [MemberData(nameof(BadCommands))]
    public async Task A_bad_command_is_refused_naming_the_field_and_changes_nothing(string description, string body, int status, string field)
    {
        var client = await _server.ReadyClientAsync();
        var before = await (await client.GetAsync(Url("/status"))).BodyAsync();

        var response = await client.PostAsync(Url("/command"), Json(body));

        ((int)response.StatusCode).Should().Be(status, description);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/problem+json");
        var problem = await response.BodyAsync();
        problem.GetProperty("status").GetInt32().Should().Be(status);
        problem.GetProperty("field").GetString().Should().Be(field, description);
        problem.GetProperty("detail").GetString().Should().NotBeNullOrWhiteSpace();
        await NothingWasAppliedAndTheServerServes(client, before);
    }

    [Fact]
    public async Task A_wrong_content_type_is_refused()
    {
        var client = await _server.ReadyClientAsync();
        var before = await (await client.GetAsync(Url("/status"))).BodyAsync();

        var response = await client.PostAsync(Url("/command"), new StringContent("""{"type":"SET","key":"k","value":"v"}""", Encoding.UTF8, "text/plain"));

        response.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await response.BodyAsync()).GetProperty("field").GetString().Should().Be("Content-Type");
        await NothingWasAppliedAndTheServerServes(client, before);
    }

    [Fact]
    public async Task A_body_over_the_limit_is_refused_with_413()
    {
        var client = await _server.ReadyClientAsync();
        var before = await (await client.GetAsync(Url("/status"))).BodyAsync();
        var huge = new string('x', 3 * 1024 * 1024);

        var response = await client.PostAsync(Url("/command"), Json($$"""{"type":"SET","key":"k","value":"{{huge}}"}"""));
        var put = await client.PutAsync(Url("/kv/k"), new StringContent(huge));

        response.StatusCode.Should().Be(HttpStatusCode.RequestEntityTooLarge);
        (await response.BodyAsync()).GetProperty("field").GetString().Should().Be("body");
        put.StatusCode.Should().Be(HttpStatusCode.RequestEntityTooLarge);
        await NothingWasAppliedAndTheServerServes(client, before);
    }

    [Fact]
    public async Task A_kv_put_over_the_value_limit_and_a_bad_seq_are_refused()
    {
        var client = await _server.ReadyClientAsync();
        var before = await (await client.GetAsync(Url("/status"))).BodyAsync();

        var tooLarge = await client.PutAsync(Url("/kv/k"), new StringContent(new string('v', (1024 * 1024) + 1)));
        var badSeq = await client.PutAsync(Url("/kv/k?clientId=c&seq=abc"), new StringContent("v"));
        var notUtf8 = await client.PutAsync(Url("/kv/k"), new ByteArrayContent([0xff, 0xfe, 0xfd]));

        tooLarge.StatusCode.Should().Be(HttpStatusCode.RequestEntityTooLarge);
        (await tooLarge.BodyAsync()).GetProperty("field").GetString().Should().Be("value");
        badSeq.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await badSeq.BodyAsync()).GetProperty("field").GetString().Should().Be("seq");
        notUtf8.StatusCode.Should().Be(HttpStatusCode.BadRequest);
        (await notUtf8.BodyAsync()).GetProperty("field").GetString().Should().Be("value");
        await NothingWasAppliedAndTheServerServes(client, before);
    }

    private static async Task NothingWasAppliedAndTheServerServes(HttpClient client, System.Text.Json.JsonElement before)
    {
        var after = await (await client.GetAsync(Url("/status"))).BodyAsync();
        after.GetProperty("lastIndex").GetUInt64().Should().Be(before.GetProperty("lastIndex").GetUInt64(), "nothing was proposed");
        var ok = await client.PostAsync(Url("/command"), Json("""{"type":"GET","key":"k"}"""));
        ok.StatusCode.Should().Be(HttpStatusCode.OK, "the server keeps serving");
    }
}
