namespace RaftKv.Hosting.Tests;

/// <summary>The loop's background work (snapshot writing) runs beside the loops, not before them.</summary>
public sealed class LowPrioritySchedulerTests
{
    [Fact]
    public async Task Background_work_runs_on_a_thread_of_its_own_at_a_lower_priority_and_leaves_the_callers_alone()
    {
        OperatingSystem.IsLinux().Should().BeTrue("the node's priority handling is for Linux, where CI and the images run");
        var callerBefore = CurrentNice();
        var ran = new TaskCompletionSource<(int Nice, bool PoolThread, string? Name)>(TaskCreationOptions.RunContinuationsAsynchronously);

        LowPriorityScheduler.Instance.Run(() => ran.SetResult((CurrentNice(), Thread.CurrentThread.IsThreadPoolThread, Thread.CurrentThread.Name)));
        var (nice, poolThread, name) = await ran.Task.WaitAsync(TimeSpan.FromSeconds(10));

        nice.Should().BeGreaterThanOrEqualTo(LowPriorityScheduler.Nice, "the background thread yields to the loop");
        poolThread.Should().BeFalse("a thread-pool thread would keep the lower priority for whatever it runs next");
        name.Should().Be("raftkv-background");
        CurrentNice().Should().Be(callerBefore, "only the background thread's priority changes");
    }

    /// <summary>The calling thread's niceness, as the kernel reports it (Linux).</summary>
    private static int CurrentNice()
    {
        // Field 19 of /proc/thread-self/stat, counted after the command's closing parenthesis (a name may hold spaces).
        var stat = File.ReadAllText("/proc/thread-self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return int.Parse(fields[19 - 3], System.Globalization.CultureInfo.InvariantCulture);
    }
}
