using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Xunit.Abstractions;
using static RaftKv.Server.Tests.Http;

namespace RaftKv.Server.Tests;

/// <summary>
/// Hostile HTTP: random and mutated requests (methods, paths, query strings, content types, JSON bodies with bytes
/// flipped, cut, repeated, fields of the wrong type, huge or odd values) against the real server in this process. The
/// properties: no 5xx but 503 and 504; every refusal (4xx) changes nothing: the state digest, which covers every item,
/// session and the applied index, stays what it was (a compare-and-set that did not match is the one 409 that is applied:
/// a write whose result is "no"); the server keeps serving. CI runs 5,000 seeded cases; RAFTKV_FUZZ_CASES (one HTTP case per 100 of it, as HTTP cases cost about 100 decoder cases) and RAFTKV_FUZZ_SEED raise it by hand.
/// </summary>
public sealed class HttpApiFuzzTests(ServerFixture server, ITestOutputHelper output) : IClassFixture<ServerFixture>
{
    private static readonly int Cases = int.TryParse(Environment.GetEnvironmentVariable("RAFTKV_FUZZ_CASES"), CultureInfo.InvariantCulture, out var n) ? Math.Max(1, n / 100) : 5_000;
    private static readonly int Seed = int.TryParse(Environment.GetEnvironmentVariable("RAFTKV_FUZZ_SEED"), CultureInfo.InvariantCulture, out var s) ? s : 1;

    private static readonly string[] Bodies =
    [
        """{"type":"SET","key":"k","value":"v"}""",
        """{"type":"GET","key":"k","consistency":"stale"}""",
        """{"type":"DELETE","key":"k","clientId":"c","seq":1}""",
        """{"type":"CAS","key":"k","expected":"v","value":"w"}""",
        """{"type":"CAS","key":"k","expectedVersion":0,"value":"w"}""",
        """{"id":"n4","peerUrl":"http://127.0.0.1:1","clientUrl":"http://127.0.0.1:2","learner":true}""",
        """{"to":"n2"}""",
    ];

    private static readonly string[] Paths =
    [
        "/command", "/command", "/command", "/kv/k", "/kv/a%2Fb", "/kv/", "/kv/" + new string('x', 2_000), "/cluster/members",
        "/cluster/members/n9", "/cluster/members/n1/promote", "/cluster/members/zz/promote", "/cluster/leader", "/status", "/status?digest=1",
        "/health/ready", "/nowhere", "/command?x=%ff", "/kv/k?seq=-1&clientId=", "/kv/k?consistency=sideways",
    ];

    private static readonly string[] Methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

    private static readonly string?[] ContentTypes = ["application/json", "application/json; charset=utf-16", "text/plain", "application/problem+json", null, "multipart/form-data"];

    [Fact]
    public async Task Random_and_mutated_requests_get_no_server_error_and_refusals_change_nothing()
    {
        var client = await server.ReadyClientAsync();
        var random = new Random(Seed);
        var statuses = new SortedDictionary<int, int>();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < Cases; i++)
        {
            var before = await DigestAsync(client);
            using var request = new HttpRequestMessage(new HttpMethod(Methods[random.Next(Methods.Length)]), Url(Paths[random.Next(Paths.Length)]));
            if (random.Next(4) != 0)
            {
                var body = Mutate(random, Bodies[random.Next(Bodies.Length)]);
                request.Content = new ByteArrayContent(body);
                if (ContentTypes[random.Next(ContentTypes.Length)] is { } type)
                {
                    request.Content.Headers.TryAddWithoutValidation("Content-Type", type);
                }
            }
            if (random.Next(8) == 0)
            {
                request.Headers.TryAddWithoutValidation(random.Next(2) == 0 ? "Authorization" : "X-" + random.Next(), new string((char)random.Next(33, 127), random.Next(1, 300)));
            }

            using var response = await client.SendAsync(request);
            var status = (int)response.StatusCode;
            statuses[status] = statuses.GetValueOrDefault(status) + 1;
            if (status >= 500 && status is not (503 or 504))
            {
                throw new Xunit.Sdk.XunitException($"case {i} (seed {Seed}): {request.Method} {request.RequestUri} → {status}: {await response.Content.ReadAsStringAsync()}");
            }
            var text = await response.Content.ReadAsStringAsync();
            if (status == 409 && text.Contains("\"cas_mismatch\"", StringComparison.Ordinal))
            {
                continue; // a compare-and-set that did not match: a write that was applied and changed nothing but the applied index
            }
            if (status is >= 400 and < 500)
            {
                (await DigestAsync(client)).Should().Be(before, "case {0}: {1} {2} was refused ({3}: {4}) and must change nothing", i, request.Method, request.RequestUri,
                    status, text);
            }
        }
        output.WriteLine($"{Cases:N0} cases in {clock.Elapsed.TotalSeconds:F1} s (seed {Seed}): " + string.Join(", ", statuses.Select(p => $"{p.Key}×{p.Value}")));
        (await client.GetAsync(Url("/health/ready"))).IsSuccessStatusCode.Should().BeTrue("the server keeps serving");
        statuses.Keys.Should().Contain(k => k >= 400 && k < 500).And.Contain(k => k >= 200 && k < 300);
    }

    private static async Task<string?> DigestAsync(HttpClient client) =>
        (await client.GetFromJsonAsync<JsonElement>(Url("/status?digest=true"))).GetProperty("digest").GetString();

    private static byte[] Mutate(Random random, string body)
    {
        var text = body;
        switch (random.Next(8))
        {
            case 0:
                return Encoding.UTF8.GetBytes(text); // as it is
            case 1:
                // a field's value replaced by another JSON type or an odd value
                string[] odd = ["null", "7", "-1", "1e309", "true", "[]", "{}", "\"\"", "\"\\u0000\"", "\"" + new string('z', 5_000) + "\"", "18446744073709551616"];
                var quote = text.IndexOf(":\"", StringComparison.Ordinal);
                return Encoding.UTF8.GetBytes(quote < 0 ? text : text[..(quote + 1)] + odd[random.Next(odd.Length)] + text[(text.IndexOf('"', quote + 2) + 1)..]);
            case 2:
                return Encoding.UTF8.GetBytes(text.Replace("\"key\"", "\"" + (char)random.Next(32, 127) + "ey\"", StringComparison.Ordinal)); // an unknown field
            case 3:
                var bytes = new byte[random.Next(0, 200)];
                random.NextBytes(bytes); // not JSON, not UTF-8
                return bytes;
            default:
                var mutated = new List<byte>(Encoding.UTF8.GetBytes(text));
                for (var m = random.Next(1, 4); m > 0 && mutated.Count > 0; m--)
                {
                    var at = random.Next(mutated.Count);
                    switch (random.Next(4))
                    {
                        case 0: mutated[at] = (byte)random.Next(256); break;
                        case 1: mutated.RemoveRange(at, Math.Min(mutated.Count - at, random.Next(1, 6))); break;
                        case 2: mutated.InsertRange(at, mutated.GetRange(at, Math.Min(mutated.Count - at, random.Next(1, 20)))); break;
                        default: mutated.Insert(at, (byte)"{}[]\",:\\"[random.Next(8)]); break;
                    }
                }
                return [.. mutated];
        }
    }
}
