using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Configuration;
using RaftKv.Node;
using RaftKv.RaftCore;
using RaftKv.StateMachine;
using RaftKv.Storage;
using RaftKv.Transport;
using YamlDotNet.RepresentationModel;

namespace RaftKv.Hosting.Tests;

/// <summary>
/// What can be checked of the container and Kubernetes files without a container engine: they parse, every setting they
/// set is one the server reads (a renamed setting fails here), each node's settings pass the server's own checks, and the
/// ports, probes and paths they name are the server's.
/// </summary>
public sealed partial class DeployFilesTests
{
    private static readonly SettingsSection[] Sections =
    [
        new("Node", typeof(NodeOptions)), new("Raft", typeof(RaftOptions)), new("Loop", typeof(NodeLoopOptions)),
        new("Storage", typeof(StorageOptions)), new("Transport", typeof(TransportOptions)), new("Auth", typeof(AuthOptions)),
        new("Tls", typeof(TlsOptions)), new("Kv", typeof(KvOptions)),
    ];

    private static readonly string Root = Repository();

    [Fact]
    public void Every_yaml_file_under_deploy_parses_and_kustomize_names_files_that_exist()
    {
        var files = Directory.GetFiles(Path.Combine(Root, "deploy"), "*.*", SearchOption.AllDirectories)
            .Where(f => f.EndsWith(".yml", StringComparison.Ordinal) || f.EndsWith(".yaml", StringComparison.Ordinal)).ToList();

        files.Select(f => Path.GetRelativePath(Root, f).Replace('\\', '/')).Should().Contain(
            ["deploy/docker-compose.yml", "deploy/k8s/statefulset.yaml", "deploy/k8s/services.yaml", "deploy/k8s/pdb.yaml", "deploy/k8s/kustomization.yaml"]);
        foreach (var file in files)
        {
            Documents(file).Should().NotBeEmpty(file);
        }
        var kustomization = Documents(Path.Combine(Root, "deploy", "k8s", "kustomization.yaml")).Single();
        foreach (var resource in Seq(kustomization, "resources"))
        {
            File.Exists(Path.Combine(Root, "deploy", "k8s", Text(resource))).Should().BeTrue($"kustomization.yaml names {Text(resource)}");
        }
    }

    [Fact]
    public void Every_RaftKv_variable_in_the_deploy_files_names_a_setting_the_server_reads()
    {
        var names = DockerfileEnvironment().Keys
            .Concat(ComposeServices().SelectMany(s => Environment(s.Node).Keys))
            .Concat(StatefulSetEnvironment().Keys)
            .Where(name => name.StartsWith("RaftKv__", StringComparison.Ordinal)).Distinct().ToList();

        names.Should().HaveCountGreaterThan(5);
        var settings = Sections.SelectMany(s => s.Settings().Select(setting => $"RaftKv__{s.Name}__{setting.Name}")).ToHashSet(StringComparer.Ordinal);
        names.Where(name => !settings.Contains(name)).Should().BeEmpty("every RaftKv__Section__Name must be a setting, spelt as its options class spells it");
    }

    [Fact]
    public void Each_compose_node_passes_the_servers_checks_and_publishes_its_client_port()
    {
        var services = ComposeServices();
        services.Should().HaveCount(3);
        var peerLists = new HashSet<string>();
        var ids = new HashSet<NodeId>();
        foreach (var (name, service) in services)
        {
            var options = Bind(DockerfileEnvironment().Concat(Environment(service)).GroupBy(kv => kv.Key).ToDictionary(g => g.Key, g => g.Last().Value));

            options.Validate().Should().BeEmpty($"service {name}");
            ids.Add(options.Id).Should().BeTrue($"{name} has a node id of its own");
            peerLists.Add(options.Peers);
            Text(service, "hostname").Should().Be(name);
            options.HttpUrl.Host.Should().Be(name, "clients and peers know a node by its service name");
            options.PeerUrls()[options.Id].Host.Should().Be(name);
            var published = Seq(service, "ports").Select(Text).Single();
            published.Split(':')[^1].Should().Be(options.HttpListenUrl.Port.ToString(CultureInfo.InvariantCulture), "the published container port is the client listener's");
            Text(Map(service, "build"), "dockerfile").Should().Be("Dockerfile");
            File.Exists(Path.Combine(Root, "deploy", Text(Map(service, "build"), "context"), "Dockerfile")).Should().BeTrue();
            Seq(service, "volumes").Select(Text).Single().Should().EndWith(":" + DockerfileEnvironment()["RaftKv__Node__DataDir"]);
            DockerfileExposed().Should().Contain([options.HttpListenUrl.Port, options.PeerListenUrl.Port]);
        }
        peerLists.Should().ContainSingle("every member is started with the same member list");
    }

    [Theory]
    [InlineData("raftkv-0", 1)]
    [InlineData("raftkv-2", 3)]
    public void A_statefulset_pod_derives_valid_settings_and_the_manifests_agree_with_them(string pod, int nodeId)
    {
        var statefulSet = Manifest("statefulset.yaml", "StatefulSet");
        var spec = Map(statefulSet, "spec");
        var environment = StatefulSetEnvironment().ToDictionary(kv => kv.Key, kv => kv.Value.Replace("$(POD_NAME)", pod, StringComparison.Ordinal)
            .Replace("$(POD_NAMESPACE)", "db", StringComparison.Ordinal));
        var options = Bind(DockerfileEnvironment().Concat(environment).GroupBy(kv => kv.Key).ToDictionary(g => g.Key, g => g.Last().Value), pod);

        options.Validate().Should().BeEmpty();
        options.Id.Should().Be(new NodeId((ulong)nodeId));
        var (name, replicas, domain) = options.StatefulSet.Split(':') is [var n, var r, var d] ? (n, int.Parse(r, CultureInfo.InvariantCulture), d) : default;
        name.Should().Be(Text(Map(statefulSet, "metadata"), "name"));
        replicas.Should().Be(int.Parse(Text(spec, "replicas"), CultureInfo.InvariantCulture), "the members are the replicas");
        domain.Should().Be($"{Text(spec, "serviceName")}.db.svc.cluster.local");
        options.PeerUrls().Should().HaveCount(replicas);
        options.PeerUrls()[options.Id].Host.Should().Be($"{pod}.{domain}", "a pod's peer URL is its own stable DNS name");
        Text(spec, "podManagementPolicy").Should().Be("Parallel", "pods wait for each other to become ready: started in order they never would");

        var headless = Manifest("services.yaml", "Service", Text(spec, "serviceName"));
        Text(Map(headless, "spec"), "clusterIP").Should().Be("None");
        Text(Map(headless, "spec"), "publishNotReadyAddresses").Should().Be("true", "the pods must find each other before any is ready");

        var podSpec = Map(Map(Map(spec, "template"), "spec"));
        var container = (YamlMappingNode)Seq(podSpec, "containers").Single();
        var ports = Seq(container, "ports").Cast<YamlMappingNode>().ToDictionary(p => Text(p, "name"), p => int.Parse(Text(p, "containerPort"), CultureInfo.InvariantCulture));
        ports.Should().Equal(new Dictionary<string, int> { ["client"] = options.HttpListenUrl.Port, ["peer"] = options.PeerListenUrl.Port });
        foreach (var service in Documents(Path.Combine(Root, "deploy", "k8s", "services.yaml")))
        {
            foreach (var port in Seq(Map(service, "spec"), "ports").Cast<YamlMappingNode>())
            {
                ports.Should().ContainKey(Text(port, "targetPort"));
                Text(port, "port").Should().Be(ports[Text(port, "targetPort")].ToString(CultureInfo.InvariantCulture));
            }
        }

        // The probes ask the health routes the node maps, on the client port.
        var hosting = File.ReadAllText(Path.Combine(Root, "src", "RaftKv.Hosting", "RaftNodeHosting.cs"));
        foreach (var (probe, path) in new[] { ("livenessProbe", "/health"), ("readinessProbe", "/health/ready") })
        {
            var get = Map(Map(container, probe), "httpGet");
            Text(get, "path").Should().Be(path);
            Text(get, "port").Should().Be("client");
            hosting.Should().Contain($"MapHealthChecks(\"{path}\"");
        }
        var volume = (YamlMappingNode)Seq(container, "volumeMounts").Single();
        Text(volume, "mountPath").Should().Be(options.DataDir);
        int.Parse(Text(podSpec, "terminationGracePeriodSeconds"), CultureInfo.InvariantCulture).Should().BeGreaterThanOrEqualTo(15,
            "SIGTERM: the leader hands off, then the host has 10 s (HostOptions.ShutdownTimeout) to stop");
        Text(Map(podSpec, "securityContext"), "runAsNonRoot").Should().Be("true");

        var budget = Manifest("pdb.yaml", "PodDisruptionBudget");
        Text(Map(budget, "spec"), "maxUnavailable").Should().Be("1");
        Labels(Map(Map(budget, "spec"), "selector")).Should().Equal(Labels(Map(Map(spec, "template"), "metadata"), "labels"));
    }

    [Fact]
    public void The_Dockerfile_publishes_a_project_that_exists_runs_its_dll_and_copies_what_exists()
    {
        var dockerfile = File.ReadAllText(Path.Combine(Root, "Dockerfile"));
        var project = PublishRegex().Match(dockerfile).Groups[1].Value;
        File.Exists(Path.Combine(Root, project)).Should().BeTrue($"the Dockerfile publishes {project}");
        var assembly = Regex.Match(File.ReadAllText(Path.Combine(Root, project)), "<AssemblyName>(.+)</AssemblyName>") is { Success: true } named
            ? named.Groups[1].Value : Path.GetFileNameWithoutExtension(project);
        dockerfile.Should().Contain($"ENTRYPOINT [\"dotnet\", \"{assembly}.dll\"]");
        foreach (Match copy in CopyRegex().Matches(dockerfile))
        {
            foreach (var source in copy.Groups[1].Value.Split(' ', StringSplitOptions.RemoveEmptyEntries).SkipLast(1))
            {
                Path.Exists(Path.Combine(Root, source)).Should().BeTrue($"the Dockerfile copies {source}");
            }
        }
        var ignored = File.ReadAllLines(Path.Combine(Root, ".dockerignore")).Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        ignored.Should().NotContain(["src/", "src", "Directory.Build.props", "Directory.Packages.props"], "the build stage copies them");
        dockerfile.Should().MatchRegex("(?m)^FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build$").And.MatchRegex("(?m)^FROM mcr.microsoft.com/dotnet/aspnet:10.0$")
            .And.MatchRegex("(?m)^USER \\$APP_UID$").And.MatchRegex("(?m)^VOLUME " + Regex.Escape(DockerfileEnvironment()["RaftKv__Node__DataDir"]) + "$");
        var defaults = Bind(DockerfileEnvironment());
        defaults.Validate().Should().BeEmpty("the image's own settings start a node");
        DockerfileExposed().Should().Equal(defaults.HttpListenUrl.Port, defaults.PeerListenUrl.Port);
        dockerfile.Should().Contain($"/dev/tcp/127.0.0.1/{defaults.HttpListenUrl.Port}").And.Contain("GET /health HTTP/1.1");
    }

    // ---- the files

    private static NodeOptions Bind(IReadOnlyDictionary<string, string> environment, string hostName = "raftkv-0")
    {
        // As ASP.NET Core's environment source reads RaftKv__Node__Http: the key RaftKv:Node:Http.
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(environment
            .Where(kv => kv.Key.StartsWith("RaftKv__", StringComparison.Ordinal))
            .Select(kv => KeyValuePair.Create(kv.Key.Replace("__", ":", StringComparison.Ordinal), (string?)kv.Value))).Build();
        var options = new NodeOptions { HostName = hostName };
        configuration.GetSection("RaftKv:Node").Bind(options);
        return options;
    }

    private static Dictionary<string, string> DockerfileEnvironment()
    {
        var dockerfile = File.ReadAllText(Path.Combine(Root, "Dockerfile")).Replace("\\\n", " ", StringComparison.Ordinal);
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in dockerfile.Split('\n').Where(l => l.StartsWith("ENV ", StringComparison.Ordinal)))
        {
            foreach (Match pair in EnvRegex().Matches(line[4..]))
            {
                environment[pair.Groups[1].Value] = pair.Groups[2].Value;
            }
        }
        return environment;
    }

    private static List<int> DockerfileExposed() =>
        [.. File.ReadAllLines(Path.Combine(Root, "Dockerfile")).Where(l => l.StartsWith("EXPOSE ", StringComparison.Ordinal))
            .SelectMany(l => l[7..].Split(' ', StringSplitOptions.RemoveEmptyEntries)).Select(p => int.Parse(p, CultureInfo.InvariantCulture))];

    private static List<(string Name, YamlMappingNode Node)> ComposeServices() =>
        [.. Map(Documents(Path.Combine(Root, "deploy", "docker-compose.yml")).Single(), "services").Children
            .Select(c => (Text(c.Key), (YamlMappingNode)c.Value))];

    private static Dictionary<string, string> Environment(YamlMappingNode service) =>
        Map(service, "environment").Children.ToDictionary(c => Text(c.Key), c => Text(c.Value), StringComparer.Ordinal);

    private static Dictionary<string, string> StatefulSetEnvironment()
    {
        var container = (YamlMappingNode)Seq(Map(Map(Map(Manifest("statefulset.yaml", "StatefulSet"), "spec"), "template"), "spec"), "containers").Single();
        return Seq(container, "env").Cast<YamlMappingNode>().Where(e => e.Children.ContainsKey("value"))
            .ToDictionary(e => Text(e, "name"), e => Text(e, "value"), StringComparer.Ordinal);
    }

    private static YamlMappingNode Manifest(string file, string kind, string? name = null) =>
        Documents(Path.Combine(Root, "deploy", "k8s", file))
            .Single(d => Text(d, "kind") == kind && (name is null || Text(Map(d, "metadata"), "name") == name));

    private static List<YamlMappingNode> Documents(string file)
    {
        var stream = new YamlStream();
        using (var reader = new StreamReader(file))
        {
            stream.Load(reader);
        }
        return [.. stream.Documents.Select(d => d.RootNode).OfType<YamlMappingNode>()];
    }

    private static Dictionary<string, string> Labels(YamlMappingNode node, string key = "matchLabels") =>
        Map(node, key).Children.ToDictionary(c => Text(c.Key), c => Text(c.Value));

    private static YamlMappingNode Map(YamlMappingNode node, string key) => (YamlMappingNode)node.Children[new YamlScalarNode(key)];

    private static YamlMappingNode Map(YamlMappingNode node) => node;

    private static YamlSequenceNode Seq(YamlMappingNode node, string key) => (YamlSequenceNode)node.Children[new YamlScalarNode(key)];

    private static string Text(YamlMappingNode node, string key) => Text(node.Children[new YamlScalarNode(key)]);

    private static string Text(YamlNode node) => ((YamlScalarNode)node).Value ?? "";

    [GeneratedRegex(@"dotnet publish (\S+\.csproj)")]
    private static partial Regex PublishRegex();

    [GeneratedRegex(@"(?m)^COPY (?!--from)(.+)$")]
    private static partial Regex CopyRegex();

    [GeneratedRegex(@"(RaftKv__\w+|ASPNETCORE_\w+)=(\S*)")]
    private static partial Regex EnvRegex();

    private static string Repository()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "RaftKv.sln")))
        {
            directory = directory.Parent;
        }
        return directory?.FullName ?? throw new InvalidOperationException("RaftKv.sln not found");
    }
}
