using System.Net;
using static RaftKv.Server.Tests.Http;

namespace RaftKv.Server.Tests;

/// <summary>POST /txn: a lock taken once, the branch that ran answered, and each bad part of a transaction named.</summary>
public sealed class TxnApiTests : IClassFixture<ServerFixture>
{
    private const string TakeLock = """
        {"compare":[{"key":"txn/lock","target":"exists","exists":false}],
         "success":[{"type":"PUT","key":"txn/lock","value":"OWNER"}],
         "failure":[{"type":"GET","key":"txn/lock"}]}
        """;

    private readonly ServerFixture _server;

    public TxnApiTests(ServerFixture server) => _server = server;

    [Fact]
    public async Task A_lock_taken_by_a_transaction_is_refused_to_the_next_taker_who_sees_its_owner()
    {
        var client = await _server.ReadyClientAsync();

        var first = await client.PostAsync(Url("/txn"), Json(TakeLock.Replace("OWNER", "a", StringComparison.Ordinal)));
        var second = await client.PostAsync(Url("/txn"), Json(TakeLock.Replace("OWNER", "b", StringComparison.Ordinal)));

        first.StatusCode.Should().Be(HttpStatusCode.OK);
        var taken = await first.BodyAsync();
        taken.GetProperty("succeeded").GetBoolean().Should().BeTrue();
        taken.GetProperty("results")[0].GetProperty("type").GetString().Should().Be("PUT");
        var created = taken.GetProperty("results")[0].GetProperty("createRevision").GetUInt64();
        created.Should().Be(taken.GetProperty("index").GetUInt64());
        second.StatusCode.Should().Be(HttpStatusCode.OK);
        var refused = await second.BodyAsync();
        refused.GetProperty("succeeded").GetBoolean().Should().BeFalse();
        refused.GetProperty("results")[0].GetProperty("value").GetString().Should().Be("a");
        refused.GetProperty("results")[0].GetProperty("createRevision").GetUInt64().Should().Be(created);
        (await (await client.GetAsync(Url("/kv/txn/lock"))).BodyAsync()).GetProperty("value").GetString().Should().Be("a");
    }

    public static TheoryData<string, string, int, string> BadTransactions => new()
    {
        { "an empty transaction", """{}""", 400, "body" },
        { "an unknown target", """{"compare":[{"key":"k","target":"colour","value":"red"}]}""", 400, "compare[0].target" },
        { "an unknown operator", """{"compare":[{"key":"k","target":"version","op":"~","version":1}]}""", 400, "compare[0].op" },
        { "the operand of another target", """{"compare":[{"key":"k","target":"version","value":"1"}]}""", 400, "compare[0].value" },
        { "no operand", """{"compare":[{"key":"k","target":"createRevision"}]}""", 400, "compare[0].createRevision" },
        { "exists with <", """{"compare":[{"key":"k","target":"exists","op":"<","exists":true}]}""", 400, "compare[0].op" },
        { "a comparison without a key", """{"compare":[{"target":"exists","exists":true}]}""", 400, "compare[0].key" },
        { "an unknown operation", """{"success":[{"type":"INCR","key":"k"}]}""", 400, "success[0].type" },
        { "PUT without a value", """{"success":[{"type":"GET","key":"k"},{"type":"PUT","key":"k"}]}""", 400, "success[1].value" },
        { "DELETE with a value", """{"failure":[{"type":"DELETE","key":"k","value":"v"}]}""", 400, "failure[0].value" },
        { "an unknown property", """{"success":[{"type":"GET","key":"k","colour":"red"}]}""", 400, "success[0].colour" },
        { "seq without clientId", """{"success":[{"type":"GET","key":"k"}],"seq":1}""", 400, "clientId" },
        { "too many operations", "{\"success\":[" + string.Join(',', Enumerable.Repeat("""{"type":"GET","key":"k"}""", 129)) + "]}", 400, "success" },
    };

    [Theory]
    [MemberData(nameof(BadTransactions))]
    public async Task A_bad_transaction_is_refused_naming_the_part_and_changes_nothing(string description, string body, int status, string field)
    {
        var client = await _server.ReadyClientAsync();
        var before = (await (await client.GetAsync(Url("/status"))).BodyAsync()).GetProperty("applied").GetUInt64();

        var response = await client.PostAsync(Url("/txn"), Json(body));

        ((int)response.StatusCode).Should().Be(status, description);
        response.Content.Headers.ContentType!.MediaType.Should().Be("application/problem+json");
        (await response.BodyAsync()).GetProperty("field").GetString().Should().Be(field, description);
        (await (await client.GetAsync(Url("/status"))).BodyAsync()).GetProperty("applied").GetUInt64().Should().Be(before, "nothing was proposed");
    }
}
