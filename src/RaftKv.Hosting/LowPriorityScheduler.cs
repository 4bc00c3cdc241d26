using System.Runtime.InteropServices;
using RaftKv.Node;

namespace RaftKv.Hosting;

/// <summary>
/// Runs the loop's background work (writing a snapshot of the whole state) on a thread of its own at a lower scheduling
/// priority (Linux: nice <see cref="Nice"/> for that thread alone), so that on a busy machine the node loops and the
/// request threads come first and writes go on at nearly their pace while a large state is written out; on an idle
/// machine the thread still gets a whole core. Elsewhere the thread runs at the normal priority.
/// </summary>
internal sealed partial class LowPriorityScheduler : IWorkScheduler
{
    /// <summary>The niceness of a background thread: 10 gives it about a tenth of a core that the loop also wants.</summary>
    public const int Nice = 10;

    public static readonly LowPriorityScheduler Instance = new();

    private LowPriorityScheduler()
    {
    }

    public void Run(Action work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var thread = new Thread(() =>
        {
            LowerPriority();
            work(); // the loop's work catches its own storage failures and reports them as an input
        })
        {
            IsBackground = true,
            Name = "raftkv-background",
        };
        thread.Start();
    }

    private static void LowerPriority()
    {
        if (OperatingSystem.IsLinux())
        {
            // PRIO_PROCESS with a thread id sets that thread's niceness alone (Linux threads are scheduled one by one).
            // Raising one's own niceness never needs a privilege; a failure leaves the normal priority, nothing worse.
            _ = SetPriority(0, GetTid(), Nice);
        }
    }

    [LibraryImport("libc", EntryPoint = "setpriority", SetLastError = true)]
    private static partial int SetPriority(int which, int who, int priority);

    [LibraryImport("libc", EntryPoint = "gettid")]
    private static partial int GetTid();
}
