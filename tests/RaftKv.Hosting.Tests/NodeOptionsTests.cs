namespace RaftKv.Hosting.Tests;

public sealed class NodeOptionsTests
{
    [Fact]
    public void The_defaults_are_a_valid_single_node_cluster()
    {
        var options = new NodeOptions();

        options.Validate().Should().BeEmpty();
        options.PeerUrls().Should().ContainSingle().Which.Value.Should().Be(new Uri("http://127.0.0.1:9080"));
    }

    [Theory]
    [InlineData("http://127.0.0.1:8080", true)]
    [InlineData("http://localhost:8080", true)]
    [InlineData("http://0.0.0.0:8080", true)]
    [InlineData("http://[::1]:8080", true)]
    [InlineData("http://node1:8080", false)]
    [InlineData("http://127.0.0.1", false)]
    [InlineData("http://127.0.0.1:8080/kv", false)]
    [InlineData("https://127.0.0.1:8080", true)] // whether https fits is RaftKv:Tls's question (SchemesMatchTlsValidator)
    [InlineData("ftp://127.0.0.1:8080", false)]
    public void The_client_url_must_be_an_address_this_node_can_listen_on(string http, bool valid)
    {
        var failures = new NodeOptions { Http = http }.Validate();

        if (valid)
        {
            failures.Should().BeEmpty();
        }
        else
        {
            failures.Should().ContainSingle().Which.Should().StartWith($"Http: '{http}'");
        }
    }

    [Fact]
    public void Other_members_may_be_named_by_host_but_this_node_listens_on_an_address()
    {
        var byName = new NodeOptions { NodeId = "n1", Peers = "n1=http://node1:9081,n2=http://node2:9081,n3=http://node3:9081" };
        var withPeer = new NodeOptions { NodeId = "n1", Peers = byName.Peers, Peer = "http://0.0.0.0:9081" };

        byName.Validate().Should().ContainSingle().Which.Should().Contain("set Peer (for example http://0.0.0.0:9081)");
        withPeer.Validate().Should().BeEmpty();
    }

    [Fact]
    public void Every_bad_value_is_one_line_naming_its_setting()
    {
        var failures = new NodeOptions { NodeId = "first", Peers = "n2=http://127.0.0.1:9999,n2=x", TickMs = 0, LogFormat = "xml", DataDir = " " }.Validate().ToList();

        failures.Should().Contain(f => f.StartsWith("NodeId: 'first'", StringComparison.Ordinal))
            .And.Contain(f => f.StartsWith("Peers: 'n2=x' has no absolute http:// URL", StringComparison.Ordinal))
            .And.Contain(f => f.StartsWith("Peers: n2 is listed twice", StringComparison.Ordinal))
            .And.Contain(f => f.StartsWith("TickMs: 0 is outside [1, 10000]", StringComparison.Ordinal))
            .And.Contain(f => f.StartsWith("LogFormat: 'xml'", StringComparison.Ordinal))
            .And.Contain(f => f.StartsWith("DataDir:", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(",")]
    [InlineData(" , ,")]
    public void A_peer_list_with_no_member_is_one_line_not_a_crash(string peers)
    {
        var failures = new NodeOptions { Peers = peers }.Validate();

        failures.Should().ContainSingle().Which.Should().StartWith("Peers:").And.Contain("lists no member");
    }

    [Theory]
    [InlineData("https://127.0.0.1:8080", false, "RaftKv:Node:Http: 'https://127.0.0.1:8080' must be http:// without TLS")]
    [InlineData("http://127.0.0.1:8080", true, "RaftKv:Node:Http: 'http://127.0.0.1:8080' must be https:// with TLS on")]
    public void Every_url_is_https_with_tls_and_http_without(string http, bool tls, string failure)
    {
        var options = new TlsOptions { CertFile = tls ? "n1.pem" : "", KeyFile = tls ? "n1-key.pem" : "", CaFile = tls ? "ca.pem" : "" };
        var validator = new SchemesMatchTlsValidator(Microsoft.Extensions.Options.Options.Create(options));

        var result = validator.Validate(null, new NodeOptions { Http = http, Peer = tls ? "https://127.0.0.1:9080" : "http://127.0.0.1:9080" });

        result.Failed.Should().BeTrue();
        result.Failures.Should().ContainSingle().Which.Should().StartWith(failure);
    }
}
