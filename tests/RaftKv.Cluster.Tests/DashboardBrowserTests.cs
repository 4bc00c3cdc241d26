using System.Diagnostics;
using System.Text.Json;
using OpenQA.Selenium.Chrome;
using RaftKv.Testing.Processes;
using Xunit.Abstractions;

namespace RaftKv.Cluster.Tests;

/// <summary>
/// The dashboard at /ui in a real headless browser (Debian's chromium, driven through chromium-driver with Selenium) on
/// three real server processes: every member and the one leader are shown, and after the leader is killed the page shows
/// it down and names the new leader. Screenshots go to RAFTKV_SCREENSHOT_DIR when set (docs/images/ is made so).
/// </summary>
public sealed class DashboardBrowserTests(ITestOutputHelper output)
{
    private const string Chromium = "/usr/bin/chromium";
    private const string ChromeDriver = "/usr/bin/chromedriver";

    private static readonly JsonSerializerOptions Web = new(JsonSerializerDefaults.Web);

    private sealed record Row(string Node, string State, string Leader, string Why);

    private sealed record PageState(string SummaryLeader, string Summary, List<Row> Rows);

    [SkippableFact]
    public async Task The_dashboard_shows_every_member_and_the_leader_and_the_new_leader_after_the_old_one_is_killed()
    {
        Skip.IfNot(File.Exists(Chromium) && File.Exists(ChromeDriver),
            $"{Chromium} or {ChromeDriver} is missing (apt-get install chromium chromium-driver; .ci/run installs them)");
        await using var cluster = await LocalCluster.StartAsync(3);
        var leader = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20));
        // The page is served by a follower, so that it outlives the leader.
        var viewer = cluster.Nodes.First(n => n != leader);
        for (var i = 0; i < 30; i++)
        {
            using var written = await LocalCluster.SetInSessionAsync(viewer, "k" + (i % 5), "v" + i, "dashboard", (ulong)i + 1);
            written.EnsureSuccessStatusCode();
        }

        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(ChromeDriver)!, Path.GetFileName(ChromeDriver));
        service.HideCommandPromptWindow = true;
        var options = new ChromeOptions { BinaryLocation = Chromium };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900");
        var driver = new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
        try
        {
            driver.Navigate().GoToUrl(new Uri(viewer.BaseAddress, "/ui"));

            var shown = await WaitForPageAsync(driver, cluster, page =>
                page.Rows.Count == 3 && page.Rows.All(r => r.State == "up") && page.SummaryLeader == leader.NodeId
                && page.Rows.Count(r => r.Leader == "true") == 1 && page.Rows.Single(r => r.Leader == "true").Node == leader.NodeId);
            output.WriteLine($"before: {shown.Summary}");
            shown.Rows.Select(r => r.Node).Should().BeEquivalentTo(cluster.Nodes.Select(n => n.NodeId));
            Screenshot(driver, "dashboard.png");

            await leader.KillAsync();
            var next = await cluster.WaitForLeaderAsync(TimeSpan.FromSeconds(20), cluster.Nodes.Where(n => n != leader));
            var after = await WaitForPageAsync(driver, cluster, page =>
                page.SummaryLeader == next.NodeId && page.Rows.Single(r => r.Node == leader.NodeId).State == "down"
                && page.Rows.Single(r => r.Leader == "true").Node == next.NodeId);
            output.WriteLine($"after killing {leader.NodeId}: {after.Summary}");
            after.Rows.Count(r => r.State == "up").Should().Be(2);
            Screenshot(driver, "dashboard-leader-killed.png");
        }
        finally
        {
            var driverPid = service.ProcessId;
            driver.Quit();
            driver.Dispose();
            StopIfRunning(driverPid);
            service.Dispose();
        }
    }

    /// <summary>Reads the page's state (one script, so the table is never seen half redrawn) until it holds; fails with the last state,
    /// why each member shows down, and the end of each node's log after 30 s.</summary>
    private async Task<PageState> WaitForPageAsync(ChromeDriver driver, LocalCluster cluster, Func<PageState, bool> holds)
    {
        var clock = Stopwatch.StartNew();
        PageState? last = null;
        while (clock.Elapsed < TimeSpan.FromSeconds(30))
        {
            var json = (string)driver.ExecuteScript("""
                const summary = document.getElementById('summary');
                return JSON.stringify({
                  summaryLeader: summary.dataset.leader || '',
                  summary: summary.textContent,
                  rows: [...document.querySelectorAll('#members tbody tr')].map(r => ({ node: r.dataset.node, state: r.dataset.state, leader: r.dataset.leader, why: r.children[1]?.title || '' }))
                });
                """)!;
            last = JsonSerializer.Deserialize<PageState>(json, Web)!;
            if (holds(last))
            {
                return last;
            }
            await Task.Delay(200);
        }
        output.WriteLine($"last page state: {JsonSerializer.Serialize(last)}");
        foreach (var node in cluster.Nodes)
        {
            output.WriteLine($"{node.NodeId} (pid {node.Pid}, {(node.HasExited ? "exited " + node.ExitCode : "running")}), the end of its log:{Environment.NewLine}{node.Tail(30)}");
        }
        throw new Xunit.Sdk.XunitException($"the dashboard did not show the expected state within 30 s; it showed: {last?.Summary} " +
            string.Join(", ", last?.Rows.Select(r => $"{r.Node} {r.State} leader={r.Leader}{(r.Why.Length > 0 ? " (" + r.Why + ")" : "")}") ?? []));
    }

    private void Screenshot(ChromeDriver driver, string name)
    {
        var directory = Environment.GetEnvironmentVariable("RAFTKV_SCREENSHOT_DIR") is { Length: > 0 } dir ? dir : Path.GetTempPath();
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, name);
        driver.GetScreenshot().SaveAsFile(path);
        output.WriteLine($"screenshot: {path}");
    }

    private static void StopIfRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill(entireProcessTree: true);
        }
        catch (ArgumentException)
        {
            // Already gone: Quit stopped it.
        }
        catch (InvalidOperationException)
        {
            // Exited meanwhile.
        }
    }
}
