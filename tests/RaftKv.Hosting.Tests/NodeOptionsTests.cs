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
    [InlineData("http://node1:8080", true)] // a host name: every address is bound, the name is what others dial
    [InlineData("http://raftkv-0.raftkv.default.svc.cluster.local:8080", true)]
    [InlineData("http://node 1:8080", false)]
    [InlineData("http://127.0.0.1", false)]
    [InlineData("http://127.0.0.1:8080/kv", false)]
    [InlineData("https://127.0.0.1:8080", true)] // whether https fits is RaftKv:Tls's question (SchemesMatchTlsValidator)
    [InlineData("ftp://127.0.0.1:8080", false)]
    public void The_client_url_names_an_address_or_a_host_and_a_port(string http, bool valid)
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
    public void A_node_named_by_host_binds_every_address_unless_told_where_to_listen()
    {
        var byName = new NodeOptions { NodeId = "n1", Http = "http://node1:8081", Peers = "n1=http://node1:9081,n2=http://node2:9081,n3=http://node3:9081" };
        var split = new NodeOptions { NodeId = "n1", Http = byName.Http, Peers = byName.Peers, ListenHttp = "http://127.0.0.1:8081", ListenPeer = "http://10.0.0.5:7000" };

        byName.Validate().Should().BeEmpty();
        byName.PeerUrl.Should().Be(new Uri("http://node1:9081"));
        byName.PeerListenUrl.Should().Be(new Uri("http://node1:9081"), "a host name here is bound as every address (RaftNodeHosting.Listen)");
        split.Validate().Should().BeEmpty();
        split.HttpListenUrl.Should().Be(new Uri("http://127.0.0.1:8081"));
        split.PeerListenUrl.Should().Be(new Uri("http://10.0.0.5:7000"));
        split.PeerUrl.Should().Be(new Uri("http://node1:9081"), "the other members still dial the name");
    }

    [Theory]
    [InlineData("ListenHttp", "http://node1:8081")]
    [InlineData("ListenPeer", "http://node1:9081")]
    [InlineData("ListenPeer", "node1:9081")]
    [InlineData("ListenHttp", "http://127.0.0.1")]
    [InlineData("ListenHttp2", "http://node1:8180")]
    public void A_listen_url_must_name_an_address_not_a_host(string setting, string value)
    {
        var options = setting switch
        {
            "ListenHttp" => new NodeOptions { ListenHttp = value },
            "ListenHttp2" => new NodeOptions { ListenHttp2 = value },
            _ => new NodeOptions { ListenPeer = value },
        };

        options.Validate().Should().ContainSingle().Which.Should().StartWith($"{setting}: '{value}' is not an http:// (or https://) URL with a port and an address to listen on");
    }

    [Fact]
    public void The_two_listeners_need_two_ports()
    {
        var options = new NodeOptions { Http = "http://node1:8080", ListenPeer = "http://0.0.0.0:8080" };

        options.Validate().Should().ContainSingle().Which.Should().Be("ListenPeer: the peer listener's port 8080 must differ from the client listener's");
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

    [Theory]
    [InlineData("https://127.0.0.1:8180", "ListenHttp2: 'https://127.0.0.1:8180' must be http://: it is the cleartext HTTP/2 listener")]
    [InlineData("http://127.0.0.1:8080", "ListenHttp2: the HTTP/2 listener's port 8080 must differ from the client listener's (8080) and the peer listener's (9080)")]
    [InlineData("http://127.0.0.1:9080", "ListenHttp2: the HTTP/2 listener's port 9080 must differ from the client listener's (8080) and the peer listener's (9080)")]
    public void The_http2_listener_is_cleartext_on_a_port_of_its_own(string listen, string failure)
    {
        var options = new NodeOptions { ListenHttp2 = listen };

        options.Validate().Should().ContainSingle().Which.Should().StartWith(failure);
    }

    [Fact]
    public void The_http2_listener_adds_its_port_to_the_client_ports()
    {
        var options = new NodeOptions { ListenHttp2 = "http://0.0.0.0:8180" };

        options.Validate().Should().BeEmpty();
        options.Http2ListenUrl.Should().Be(new Uri("http://0.0.0.0:8180"));
        options.ClientListenPorts.Should().Equal(8080, 8180);
        new NodeOptions().ClientListenPorts.Should().Equal(8080);
    }

    [Fact]
    public void A_cleartext_http2_listener_is_refused_with_tls_on()
    {
        var tls = new TlsOptions { CertFile = "n1.pem", KeyFile = "n1-key.pem", CaFile = "ca.pem" };
        var validator = new SchemesMatchTlsValidator(Microsoft.Extensions.Options.Options.Create(tls));

        var result = validator.Validate(null, new NodeOptions { Http = "https://127.0.0.1:8080", Peer = "https://127.0.0.1:9080", ListenHttp2 = "http://127.0.0.1:8180" });

        result.Failed.Should().BeTrue();
        result.Failures.Should().ContainSingle().Which.Should().StartWith("RaftKv:Node:ListenHttp2: 'http://127.0.0.1:8180' is a cleartext listener; with TLS on");
    }

    [Theory]
    [InlineData("raftkv-0", 1)]
    [InlineData("raftkv-2", 3)]
    [InlineData("raftkv-1.raftkv.db.svc.cluster.local", 2)] // a fully qualified host name
    public void A_statefulset_pod_is_node_ordinal_plus_one_and_every_replica_is_a_member(string hostName, int nodeId)
    {
        var options = new NodeOptions { StatefulSet = "raftkv:3:raftkv.db.svc.cluster.local", HostName = hostName, Http = "http://0.0.0.0:8080" };

        options.Validate().Should().BeEmpty();
        options.Id.Should().Be(new RaftCore.NodeId((ulong)nodeId));
        options.PeerUrls().Should().Equal(new Dictionary<RaftCore.NodeId, Uri>
        {
            [new RaftCore.NodeId(1)] = new("http://raftkv-0.raftkv.db.svc.cluster.local:9080"),
            [new RaftCore.NodeId(2)] = new("http://raftkv-1.raftkv.db.svc.cluster.local:9080"),
            [new RaftCore.NodeId(3)] = new("http://raftkv-2.raftkv.db.svc.cluster.local:9080"),
        });
        options.PeerUrl.Should().Be(options.PeerUrls()[options.Id], "a pod listens for peers at its own name's port");
    }

    [Fact]
    public void Statefulset_members_use_the_peer_port_of_Peer_and_https_with_tls()
    {
        StatefulSetPeers.PeerList("kv", 2, "kv", "http", 9080).Should().Be("n1=http://kv-0.kv:9080,n2=http://kv-1.kv:9080");

        var options = new NodeOptions { StatefulSet = "kv:2:kv", HostName = "kv-1", Http = "https://0.0.0.0:8443", Peer = "https://0.0.0.0:7443" };

        options.Validate().Should().BeEmpty();
        options.EffectivePeers.Should().Be("n1=https://kv-0.kv:7443,n2=https://kv-1.kv:7443");
    }

    [Theory]
    [InlineData("raftkv:3", "raftkv-0", "StatefulSet: 'raftkv:3' is not NAME:REPLICAS:DOMAIN")]
    [InlineData("RaftKv:3:raftkv", "raftkv-0", "StatefulSet: 'RaftKv' is not a StatefulSet name")]
    [InlineData("raftkv:0:raftkv", "raftkv-0", "StatefulSet: replicas '0' is not a number in [1, 7]")]
    [InlineData("raftkv:9:raftkv", "raftkv-0", "StatefulSet: replicas '9' is not a number in [1, 7]")]
    [InlineData("raftkv:3:raft_kv", "raftkv-0", "StatefulSet: 'raft_kv' is not a DNS domain")]
    [InlineData("raftkv:3:raftkv", "laptop", "StatefulSet: this host is named 'laptop', not raftkv-<ordinal>")]
    [InlineData("raftkv:3:raftkv", "raftkv-x", "StatefulSet: this host is named 'raftkv-x', not raftkv-<ordinal>")]
    [InlineData("raftkv:3:raftkv", "raftkv-3", "StatefulSet: pod raftkv-3 is past the 3 replicas")]
    public void A_bad_statefulset_setting_is_one_line_naming_it(string spec, string hostName, string failure)
    {
        var options = new NodeOptions { StatefulSet = spec, HostName = hostName, Http = "http://0.0.0.0:8080" };

        options.Validate().Should().ContainSingle().Which.Should().StartWith(failure);
        options.PeerUrls().Should().ContainSingle("nothing is derived from a bad setting");
    }

    [Fact]
    public void Statefulset_excludes_peers_join_and_another_node_id()
    {
        var failures = new NodeOptions
        {
            StatefulSet = "raftkv:3:raftkv", HostName = "raftkv-1", Http = "http://0.0.0.0:8080",
            Peers = "n1=http://a:9080", Join = "http://raftkv:8080", NodeId = "n3",
        }.Validate().ToList();

        failures.Should().Contain("StatefulSet: the members come from the replica count; leave Peers empty")
            .And.Contain("StatefulSet: a StatefulSet's pods bootstrap the cluster together; leave Join empty")
            .And.Contain(f => f.StartsWith("NodeId: 'n3', but StatefulSet makes host raftkv-1 n2", StringComparison.Ordinal));
    }
}
