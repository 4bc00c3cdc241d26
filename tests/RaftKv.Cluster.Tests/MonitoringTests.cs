using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;
using YamlDotNet.Serialization;

namespace RaftKv.Cluster.Tests;

/// <summary>
/// deploy/grafana/raftkv.json and deploy/prometheus/alerts.yml (issue 15): the rules pass promtool and their unit
/// tests, the dashboard's queries are PromQL, and every series either of them names is one a running node exports.
/// </summary>
public sealed partial class MonitoringTests(ITestOutputHelper output)
{
    private static readonly string Dashboard = Path.Combine(Paths.Repository, "deploy", "grafana", "raftkv.json");
    private static readonly string Alerts = Path.Combine(Paths.Repository, "deploy", "prometheus", "alerts.yml");
    private static readonly string AlertTests = Path.Combine(Paths.Repository, "deploy", "prometheus", "alerts_test.yml");

    /// <summary>Series Prometheus makes itself for every target: no node exports them.</summary>
    private static readonly HashSet<string> ScrapeSeries = ["up"];

    [SkippableFact]
    public async Task The_alert_rules_pass_promtool_check_rules_and_their_unit_tests()
    {
        var check = await PromtoolAsync("check", "rules", Alerts);
        output.WriteLine($"$ promtool check rules deploy/prometheus/alerts.yml\n{check.Output}");
        check.ExitCode.Should().Be(0, check.Output);

        var test = await PromtoolAsync("test", "rules", AlertTests);
        output.WriteLine($"$ promtool test rules deploy/prometheus/alerts_test.yml\n{test.Output}");
        test.ExitCode.Should().Be(0, test.Output);
        test.Output.Should().Contain("SUCCESS");
    }

    [SkippableFact]
    public async Task Every_dashboard_query_is_PromQL_that_promtool_parses()
    {
        // promtool has no "check expression", but it parses every rule's expression: each query becomes a recording
        // rule (a rules file written as JSON, which is YAML), with Grafana's variables given ordinary values.
        var rules = DashboardExpressions(withVariables: false).Select((expr, i) => new Dictionary<string, string>
        {
            ["record"] = $"dashboard:query_{i}",
            ["expr"] = expr.Replace("$__rate_interval", "1m", StringComparison.Ordinal).Replace("$job", ".*", StringComparison.Ordinal),
        }).ToList();
        rules.Should().HaveCountGreaterThan(30);
        var file = Path.Combine(Path.GetTempPath(), $"raftkv-dashboard-rules-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(file, JsonSerializer.Serialize(new { groups = new[] { new { name = "dashboard", rules } } }));
        try
        {
            var check = await PromtoolAsync("check", "rules", file);
            check.ExitCode.Should().Be(0, check.Output);
            check.Output.Should().Contain($"SUCCESS: {rules.Count} rules found");
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public void The_dashboard_parses_and_every_panel_has_a_query_on_the_imported_datasource()
    {
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Dashboard));
        var root = dashboard.RootElement;
        root.GetProperty("schemaVersion").GetInt32().Should().BeGreaterThanOrEqualTo(39);
        root.GetProperty("__inputs").EnumerateArray().Select(i => i.GetProperty("name").GetString()).Should().Contain("DS_PROMETHEUS");
        var panels = root.GetProperty("panels").EnumerateArray().Where(p => p.GetProperty("type").GetString() != "row").ToList();
        panels.Should().HaveCountGreaterThan(20);
        panels.Select(p => p.GetProperty("id").GetInt32()).Should().OnlyHaveUniqueItems();
        foreach (var panel in panels)
        {
            var title = panel.GetProperty("title").GetString();
            panel.GetProperty("datasource").GetProperty("uid").GetString().Should().Be("${DS_PROMETHEUS}", title);
            var targets = panel.GetProperty("targets").EnumerateArray().ToList();
            targets.Should().NotBeEmpty($"panel '{title}' shows something");
            targets.Should().OnlyContain(t => !string.IsNullOrWhiteSpace(t.GetProperty("expr").GetString()), title);
        }
    }

    [Theory]
    [InlineData("raftkv_term", "raftkv_term")]
    [InlineData("""histogram_quantile(0.99, sum by (le, instance) (rate(raftkv_fsync_seconds_bucket{job=~"$job"}[$__rate_interval]))) > 0.1""",
        "raftkv_fsync_seconds_bucket")]
    [InlineData("""(raftkv_peer_lag_entries > 1e3) and on (job, instance) (raftkv_role{role="leader"} == 1)""", "raftkv_peer_lag_entries raftkv_role")]
    [InlineData("""sum by (instance) (rate(http_requests_received_total{endpoint="/kv/{**key}", code=~"5.."}[5m])) / ignoring (code) group_left up""",
        "http_requests_received_total up")]
    [InlineData("""{__name__="raftkv_commit_index"} - raftkv_applied_index offset 5m""", "raftkv_commit_index raftkv_applied_index")]
    [InlineData("label_values(raftkv_term, job)", "raftkv_term")]
    public void Metric_names_are_read_out_of_PromQL(string expression, string names) =>
        MetricNames(expression).Should().BeEquivalentTo(names.Split(' '));

    [Fact]
    public void A_name_that_no_node_exports_is_reported_missing()
    {
        var exported = new HashSet<string> { "raftkv_term", "raftkv_fsync_seconds_bucket", "raftkv_fsync_seconds_count" };

        Missing(["raftkv_term", "raftkv_fsync_seconds_count", "raftkv_leader_elections_total", "raftkv_fsync_seconds_total", "up"], exported)
            .Should().BeEquivalentTo("raftkv_leader_elections_total", "raftkv_fsync_seconds_total");
    }

    [Fact]
    public async Task Every_series_the_dashboard_and_the_alerts_name_is_exported_by_a_running_cluster()
    {
        var dashboard = DashboardExpressions(withVariables: true).SelectMany(MetricNames).ToHashSet();
        var alerts = AlertExpressions().SelectMany(MetricNames).ToHashSet();
        dashboard.Should().HaveCountGreaterThan(30, "the dashboard's queries were all read");
        alerts.Should().HaveCountGreaterThan(7, "the alerts' expressions were all read");

        await using var cluster = await LocalCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(15));
        using (var set = await LocalCluster.SetAsync(leader, "monitoring", "1"))
        {
            set.EnsureSuccessStatusCode();
        }
        using (await leader.Client.GetAsync(new Uri("/kv/monitoring", UriKind.Relative)))
        {
        }
        // Labelled series appear once they have a child: the leader's peer gauges, the HTTP metrics of a request.
        var exported = new HashSet<string>();
        foreach (var node in cluster.Nodes)
        {
            var page = await node.Client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
            exported.UnionWith(OperationsTests.MetricSamples(page).Keys.Select(series => series.Split('{')[0]));
        }

        string.Join(", ", Missing(dashboard, exported)).Should().BeEmpty("every series deploy/grafana/raftkv.json queries is on a node's /metrics");
        string.Join(", ", Missing(alerts, exported)).Should().BeEmpty("every series deploy/prometheus/alerts.yml uses is on a node's /metrics");
        output.WriteLine($"dashboard uses {dashboard.Count} series, alerts {alerts.Count}; the cluster exports {exported.Count}");
    }

    /// <summary>
    /// The names a query uses that no node exports. Compared with the sample names of a real /metrics page, where a
    /// histogram is already <c>…_bucket</c>, <c>…_sum</c> and <c>…_count</c>: no suffix is stripped, so a
    /// <c>_bucket</c> of a gauge or a <c>_total</c> of a histogram is missing too.
    /// </summary>
    internal static IReadOnlyList<string> Missing(IEnumerable<string> used, IReadOnlySet<string> exported) =>
        [.. used.Where(name => !exported.Contains(name) && !ScrapeSeries.Contains(name)).Distinct().Order(StringComparer.Ordinal)];

    /// <summary>
    /// The metric names in a PromQL expression: identifiers left once strings, label matchers, ranges and grouping
    /// clauses are taken out, other than functions (followed by a parenthesis) and keywords.
    /// </summary>
    internal static IEnumerable<string> MetricNames(string expression)
    {
        if (LabelValuesQuery().Match(expression) is { Success: true } labelValues)
        {
            return [labelValues.Groups[1].Value]; // a Grafana variable's query
        }
        var byName = NameMatcher().Matches(expression).Select(m => m.Groups[1].Value);
        var bare = StringLiteral().Replace(expression, "\"\"");
        bare = Braces().Replace(bare, " ");
        bare = Brackets().Replace(bare, " ");
        bare = GroupingClause().Replace(bare, " ");
        return Identifier().Matches(bare).Select(m => m.Value)
            .Where(name => !Keywords.Contains(name))
            .Concat(byName)
            .Distinct(StringComparer.Ordinal);
    }

    private static readonly HashSet<string> Keywords =
        ["and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "Inf", "NaN"];

    [GeneratedRegex("""^\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*,""")]
    private static partial Regex LabelValuesQuery();

    [GeneratedRegex(@"__name__\s*=\s*""([^""]+)""")]
    private static partial Regex NameMatcher();

    [GeneratedRegex("""("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)""")]
    private static partial Regex StringLiteral();

    [GeneratedRegex(@"\{[^{}]*\}")]
    private static partial Regex Braces();

    [GeneratedRegex(@"\[[^\]]*\]")]
    private static partial Regex Brackets();

    [GeneratedRegex(@"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")]
    private static partial Regex GroupingClause();

    // Not after a digit, a dot or a letter (1e3, 0.99), and not a function (followed by a parenthesis).
    [GeneratedRegex(@"(?<![\w.:$])[A-Za-z_:][A-Za-z0-9_:]*\b(?!\s*\()")]
    private static partial Regex Identifier();

    /// <summary>The panels' queries (PromQL), and with <paramref name="withVariables"/> the variables' (Grafana's label_values).</summary>
    private static List<string> DashboardExpressions(bool withVariables)
    {
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Dashboard));
        var root = dashboard.RootElement;
        var queries = root.GetProperty("panels").EnumerateArray()
            .Where(p => p.TryGetProperty("targets", out _))
            .SelectMany(p => p.GetProperty("targets").EnumerateArray())
            .Select(t => t.GetProperty("expr").GetString()!)
            .ToList();
        if (!withVariables)
        {
            return queries;
        }
        queries.AddRange(root.GetProperty("templating").GetProperty("list").EnumerateArray()
            .Select(v => v.GetProperty("definition").GetString()!));
        return queries;
    }

    private static List<string> AlertExpressions()
    {
        var file = new DeserializerBuilder().Build().Deserialize<Dictionary<string, List<Dictionary<string, object>>>>(File.ReadAllText(Alerts));
        return [.. file["groups"]
            .SelectMany(group => (List<object>)group["rules"])
            .Select(rule => (string)((Dictionary<object, object>)rule)["expr"])];
    }

    private static async Task<(int ExitCode, string Output)> PromtoolAsync(params string[] arguments)
    {
        var promtool = new[] { "/usr/bin/promtool", "/usr/local/bin/promtool" }.FirstOrDefault(File.Exists);
        Skip.If(promtool is null, "promtool is not installed (Debian package 'prometheus'; .ci/run installs it)");
        using var process = Process.Start(new ProcessStartInfo(promtool!, arguments) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, (await stdout + await stderr).Trim());
    }
}
