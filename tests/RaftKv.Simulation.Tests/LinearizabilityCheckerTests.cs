using RaftKv.Testing.Linearizability;
using static RaftKv.Testing.Linearizability.Operation;

namespace RaftKv.Simulation.Tests;

public sealed class LinearizabilityCheckerTests
{
    private const long Unknown = long.MaxValue;

    [Fact]
    public void A_sequential_history_that_reads_its_writes_passes()
    {
        var history = new[]
        {
            Set(1, "x", "a", 0, 1),
            Get(1, "x", 2, 3, "a"),
            Cas(1, "x", "a", "b", 4, 5, succeeded: true),
            Get(2, "x", 6, 7, "b"),
            Delete(2, "x", 8, 9, found: true),
            Get(1, "x", 10, 11, null),
        };

        LinearizabilityChecker.Check(history).Linearizable.Should().BeTrue();
    }

    [Fact]
    public void Overlapping_operations_may_take_effect_in_either_order()
    {
        // The write overlaps both reads: one read sees the old value, the other the new one. Fine.
        var history = new[]
        {
            Set(1, "x", "old", 0, 1),
            Set(1, "x", "new", 10, 30),
            Get(2, "x", 12, 14, "old"),
            Get(3, "x", 20, 25, "new"),
        };

        LinearizabilityChecker.Check(history).Linearizable.Should().BeTrue();
    }

    [Fact]
    public void A_write_whose_outcome_is_unknown_may_take_effect_late_or_never()
    {
        var late = new[]
        {
            Set(1, "x", "a", 0, 1),
            Set(2, "x", "b", 5, Unknown),
            Get(3, "x", 10, 11, "a"),
            Get(3, "x", 100, 101, "b"), // took effect long after its call
        };
        var never = new[]
        {
            Set(1, "x", "a", 0, 1),
            Set(2, "x", "b", 5, Unknown),
            Get(3, "x", 100, 101, "a"), // never took effect
        };

        LinearizabilityChecker.Check(late).Linearizable.Should().BeTrue();
        LinearizabilityChecker.Check(never).Linearizable.Should().BeTrue();
    }

    [Fact]
    public void A_stale_read_fails()
    {
        // The write of "b" returned before the read began; the read still saw "a".
        var history = new[]
        {
            Set(1, "x", "a", 0, 1),
            Set(1, "x", "b", 2, 3),
            Get(2, "x", 4, 5, "a"),
        };

        var result = LinearizabilityChecker.Check(history);

        result.Linearizable.Should().BeFalse();
        result.FailingKey.Should().Be("x");
        result.Report.Should().Contain("get → 'a'");
    }

    [Fact]
    public void A_lost_write_fails()
    {
        // An acknowledged write that no later read ever sees, while nothing else wrote.
        var history = new[]
        {
            Set(1, "x", "a", 0, 1),
            Set(2, "x", "b", 2, 3),
            Get(3, "x", 10, 11, "a"),
            Get(3, "x", 12, 13, "a"),
        };

        LinearizabilityChecker.Check(history).Linearizable.Should().BeFalse();
    }

    [Fact]
    public void A_cas_that_succeeded_twice_fails()
    {
        // Two clients both swapped 0 -> their value, one after the other: the second must have failed.
        var history = new[]
        {
            Set(1, "x", "0", 0, 1),
            Cas(1, "x", "0", "one", 2, 3, succeeded: true),
            Cas(2, "x", "0", "two", 4, 5, succeeded: true),
        };

        LinearizabilityChecker.Check(history).Linearizable.Should().BeFalse();
    }

    [Fact]
    public void A_read_of_a_value_nobody_wrote_fails()
    {
        var history = new[] { Get(1, "x", 0, 1, "ghost") };

        LinearizabilityChecker.Check(history).Linearizable.Should().BeFalse();
    }

    [Fact]
    public void Keys_are_checked_apart_and_the_smallest_failing_key_is_reported()
    {
        var history = new List<Operation>
        {
            Set(1, "good", "1", 0, 1),
            Get(1, "good", 2, 3, "1"),
            Set(1, "bad", "1", 0, 1),
            Get(2, "bad", 2, 3, "2"),
        };
        for (var i = 0; i < 20; i++)
        {
            history.Add(Set(3, "also-bad", $"v{i}", 10 + (2 * i), 11 + (2 * i)));
        }
        history.Add(Get(3, "also-bad", 100, 101, "v0"));

        var result = LinearizabilityChecker.Check(history);

        result.Linearizable.Should().BeFalse();
        result.FailingKey.Should().Be("bad", "it has the fewest operations of the failing keys");
        result.Report.Should().StartWith("NOT linearizable: 2 of 3 keys fail");
    }

    [Fact]
    public void A_busy_history_of_ten_clients_is_decided()
    {
        // Ten clients, each with one operation in flight at a time (as real clients are), 1,000 operations on one
        // register. Each operation takes effect at a point inside its window; reads return the value at that point, so
        // the history is linearizable by construction.
        var random = new Random(5);
        var free = new long[10];
        var planned = new List<(int Client, long Call, long Effect, long Return, bool Write)>();
        for (var i = 0; i < 1_000; i++)
        {
            var client = Array.IndexOf(free, free.Min());
            var call = free[client] + random.Next(0, 3);
            var effect = call + random.Next(0, 5);
            var done = effect + random.Next(0, 5);
            free[client] = done + 1;
            planned.Add((client, call, effect, done, random.Next(3) == 0));
        }
        string? value = null;
        var history = new List<Operation>();
        foreach (var (op, index) in planned.Select((p, i) => (p, i)).OrderBy(x => x.p.Effect).ThenBy(x => x.i))
        {
            if (op.Write)
            {
                value = $"v{index}";
                history.Add(Set(op.Client, "k", value, op.Call, op.Return));
            }
            else
            {
                history.Add(Get(op.Client, "k", op.Call, op.Return, value));
            }
        }

        var result = LinearizabilityChecker.Check(history);

        result.Linearizable.Should().BeTrue(result.Report);
    }

    [Fact]
    public void The_same_busy_history_with_one_read_made_stale_fails()
    {
        var history = new List<Operation>();
        long time = 0;
        for (var i = 0; i < 300; i++)
        {
            var client = i % 10;
            history.Add(Set(client, "k", $"v{i}", time, time + 2));
            history.Add(Get(client, "k", time + 3, time + 4, $"v{i}"));
            time += 5;
        }
        history[401] = history[401] with { Read = "v150" }; // the read after v200 sees an older value

        var result = LinearizabilityChecker.Check(history);

        result.Linearizable.Should().BeFalse();
        result.Report.Should().Contain("get → 'v150'");
    }
}
