using System.Net;
using System.Net.Sockets;
using System.Text;
using RaftKv.Client;
using RaftKv.Contracts;

namespace RaftKv.Cli.Tests;

/// <summary>
/// A transaction carries the client's session, so the client sends it again when a node cannot tell its outcome (a
/// follower whose forward to a dying leader got no answer: 504). Spoken to a scripted node on loopback, which answers
/// each request with the next status of its script and keeps the bodies it received.
/// </summary>
public sealed class TxnRetryTests
{
    private const string Answer = """{"succeeded":true,"results":[{"type":"PUT","key":"k","found":false,"value":null,"version":1,"createRevision":7}],"index":7,"term":2,"leader":"n2"}""";
    private const string Unknown = """{"type":"about:blank","title":"Gateway Timeout","status":504,"detail":"the leader n1 did not answer the forwarded write (Unavailable)"}""";

    private static TxnRequest Take() => new()
    {
        Compare = [new TxnCompare { Key = "k", Target = "exists", Exists = false }],
        Success = [new TxnOperation { Type = "PUT", Key = "k", Value = "v" }],
    };

    [Fact]
    public async Task A_transaction_whose_outcome_a_node_could_not_tell_is_sent_again_with_the_same_session_and_its_answer_returned()
    {
        await using var node = ScriptedNode.Start(HttpStatusCode.GatewayTimeout, HttpStatusCode.OK);
        using var client = new RaftKvClient(new RaftKvClientOptions { Endpoints = [node.Address], MaxAttempts = 3 });

        var answer = await client.TxnAsync(Take()).WaitAsync(TimeSpan.FromSeconds(30));

        answer.Succeeded.Should().BeTrue();
        answer.Results[0].CreateRevision.Should().Be(7);
        node.Bodies.Should().HaveCount(2);
        node.Bodies[1].Should().Be(node.Bodies[0], "the retry is the same write: same clientId, same seq");
        node.Bodies[0].Should().Contain("\"seq\":1").And.Contain(client.ClientId);
    }

    [Fact]
    public async Task A_transaction_no_node_could_tell_the_outcome_of_is_reported_unknown_not_unavailable()
    {
        await using var node = ScriptedNode.Start(HttpStatusCode.GatewayTimeout, HttpStatusCode.GatewayTimeout, HttpStatusCode.GatewayTimeout);
        using var client = new RaftKvClient(new RaftKvClientOptions { Endpoints = [node.Address], MaxAttempts = 3 });

        var act = () => client.TxnAsync(Take()).WaitAsync(TimeSpan.FromSeconds(30));

        await act.Should().ThrowAsync<OutcomeUnknownException>().WithMessage("*may or may not have been applied*");
        node.Bodies.Should().HaveCount(3);
    }

    [Fact]
    public async Task A_transaction_refused_as_unavailable_everywhere_was_never_applied()
    {
        await using var node = ScriptedNode.Start(HttpStatusCode.ServiceUnavailable, HttpStatusCode.ServiceUnavailable);
        using var client = new RaftKvClient(new RaftKvClientOptions { Endpoints = [node.Address], MaxAttempts = 2 });

        var act = () => client.TxnAsync(Take()).WaitAsync(TimeSpan.FromSeconds(30));

        await act.Should().ThrowAsync<ClusterUnavailableException>();
    }

    private sealed class ScriptedNode : IAsyncDisposable
    {
        private readonly HttpListener _listener;
        private readonly Task _serving;

        private ScriptedNode(HttpListener listener, Uri address, HttpStatusCode[] script)
        {
            _listener = listener;
            Address = address;
            _serving = Task.Run(() => ServeAsync(script));
        }

        public Uri Address { get; }

        public List<string> Bodies { get; } = [];

        public static ScriptedNode Start(params HttpStatusCode[] script)
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            probe.Stop();
            var address = new Uri($"http://127.0.0.1:{port}/");
            var listener = new HttpListener();
            listener.Prefixes.Add(address.ToString());
            listener.Start();
            return new ScriptedNode(listener, address, script);
        }

        private async Task ServeAsync(HttpStatusCode[] script)
        {
            foreach (var status in script)
            {
                var context = await _listener.GetContextAsync();
                using (var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8))
                {
                    Bodies.Add(await reader.ReadToEndAsync());
                }
                var ok = status == HttpStatusCode.OK;
                var body = Encoding.UTF8.GetBytes(ok ? Answer : Unknown.Replace("504", ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal));
                context.Response.StatusCode = (int)status;
                context.Response.ContentType = ok ? "application/json" : "application/problem+json";
                context.Response.ContentLength64 = body.Length;
                await context.Response.OutputStream.WriteAsync(body);
                context.Response.Close();
            }
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            _listener.Close();
            try
            {
                await _serving;
            }
            catch (Exception error) when (error is HttpListenerException or ObjectDisposedException)
            {
                // Stopped while waiting for a request the script did not get.
            }
        }
    }
}
