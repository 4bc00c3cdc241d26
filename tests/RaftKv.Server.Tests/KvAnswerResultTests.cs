using System.Text.Json;
using Microsoft.AspNetCore.Http;
using RaftKv.Contracts;

namespace RaftKv.Server.Tests;

/// <summary>
/// An answer is written through a buffer kept on the thread (not an array per answer): its bytes and Content-Length must be
/// those the contracts' serializer gives, for every answer in a row, large ones (whose buffer is let go) among them.
/// </summary>
public sealed class KvAnswerResultTests
{
    [Fact]
    public async Task Every_answer_in_a_row_is_written_as_the_contracts_serializer_writes_it()
    {
        KvResponse[] answers =
        [
            new(true, "hello", true, 3, 3, 2, "n1"),
            new(true, null, false, 0, 4, 2, null),
            new(false, "ünïcödé \"quoted\" <tag> & \\ \u0001 \ud83d\ude00", true, 9, 5, 3, "n12", KvResponse.CasMismatchError),
            new(true, new string('x', 200_000), true, 1, 6, 3, "n3"),
            new(true, "after the large one", true, 2, 7, 3, "n3"),
            new(true, "", true, 1, 8, 4, "n70"),
        ];
        foreach (var answer in answers)
        {
            var http = new DefaultHttpContext();
            using var body = new MemoryStream();
            http.Response.Body = body;

            await new KvAnswerResult(409, answer).ExecuteAsync(http);
            await http.Response.Body.FlushAsync();

            var expected = JsonSerializer.SerializeToUtf8Bytes(answer, ContractsJson.Default.KvResponse);
            body.ToArray().Should().Equal(expected);
            http.Response.ContentLength.Should().Be(expected.Length);
            http.Response.StatusCode.Should().Be(409);
            http.Response.ContentType.Should().Be("application/json");
        }
    }
}
