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

    // Transactions: a few keys written and read atomically. The checker groups the keys a transaction names and checks
    // the group as one state (the map of its keys), so that a read of half a transaction is caught.

    [Fact]
    public void A_two_key_transaction_seen_whole_before_or_after_passes()
    {
        var history = new[]
        {
            Txn(1, [], [TxnStep.Put("a", "a1"), TxnStep.Put("b", "b1")], [], 0, 1, succeeded: true, [new(true), new(true)]),
            // A compare-and-write of both keys, overlapping two atomic reads: one sees the old pair, one the new.
            Txn(1, [TxnCondition.ValueIs("a", "a1")], [TxnStep.Put("a", "a2"), TxnStep.Put("b", "b2")], [TxnStep.Get("a"), TxnStep.Get("b")],
                10, 30, succeeded: true, [new(true), new(true)]),
            Txn(2, [], [TxnStep.Get("a"), TxnStep.Get("b")], [], 12, 14, succeeded: true, [TxnSeen.Of("a1"), TxnSeen.Of("b1")]),
            Txn(3, [], [TxnStep.Get("b"), TxnStep.Get("a")], [], 20, 25, succeeded: true, [TxnSeen.Of("b2"), TxnSeen.Of("a2")]),
            // Plain operations on the same keys mix with them: a CAS against the transaction's value, a failed
            // compare that reads instead, a move that reads, deletes and writes in order.
            Cas(2, "a", "a2", "a3", 40, 41, succeeded: true),
            Txn(3, [TxnCondition.ValueIs("a", "a2")], [TxnStep.Put("a", "x")], [TxnStep.Get("a")], 42, 43, succeeded: false, [TxnSeen.Of("a3")]),
            Txn(1, [TxnCondition.Exists("a")], [TxnStep.Get("a"), TxnStep.Delete("a"), TxnStep.Get("a"), TxnStep.Put("b", "b3")], [TxnStep.Get("b")],
                44, 45, succeeded: true, [TxnSeen.Of("a3"), TxnSeen.Existed, TxnSeen.Absent, new(true)]),
            Get(2, "a", 46, 47, null),
            Get(2, "b", 48, 49, "b3"),
        };

        var result = LinearizabilityChecker.Check(history);

        result.Linearizable.Should().BeTrue(result.Report);
        result.Keys.Should().Be(1, "the transactions tie a and b into one group");
    }

    [Fact]
    public void A_read_that_sees_half_of_a_two_key_transaction_fails_though_each_key_alone_is_linearizable()
    {
        // The write of both keys overlaps the read, so each key's value alone could be either; but the read saw the new
        // a with the old b, which no order of the two gives.
        var writes = new[]
        {
            Txn(1, [], [TxnStep.Put("a", "a1"), TxnStep.Put("b", "b1")], [], 0, 1, succeeded: true, [new(true), new(true)]),
            Txn(1, [], [TxnStep.Put("a", "a2"), TxnStep.Put("b", "b2")], [], 10, 30, succeeded: true, [new(true), new(true)]),
        };
        var torn = writes.Append(Txn(2, [], [TxnStep.Get("a"), TxnStep.Get("b")], [], 12, 14, succeeded: true, [TxnSeen.Of("a2"), TxnSeen.Of("b1")]));
        // The same values read by two plain reads in the same window are fine: each may take effect on its own.
        var apart = writes.Append(Get(2, "a", 12, 14, "a2")).Append(Get(3, "b", 12, 14, "b1"));

        var result = LinearizabilityChecker.Check(torn);

        result.Linearizable.Should().BeFalse();
        result.FailingKey.Should().Be("a+b");
        result.Report.Should().Contain("txn then get a, get b → then: a 'a2', b 'b1'");
        LinearizabilityChecker.Check(apart).Linearizable.Should().BeTrue();
    }

    [Fact]
    public void A_transaction_that_ran_the_wrong_branch_fails()
    {
        // The key held "a" when the transaction compared it with "a": the success branch had to run.
        var wrongBranch = new[]
        {
            Set(1, "k", "a", 0, 1),
            Txn(2, [TxnCondition.ValueIs("k", "a")], [TxnStep.Put("k", "b")], [TxnStep.Get("k")], 2, 3, succeeded: false, [TxnSeen.Of("a")]),
        };
        // It compared with "z" and said it succeeded.
        var heldWhenItDidNot = new[]
        {
            Set(1, "k", "a", 0, 1),
            Txn(2, [TxnCondition.ValueIs("k", "z")], [TxnStep.Put("k", "b")], [], 2, 3, succeeded: true, [new(true)]),
        };
        // It said its comparison failed, but its success branch's write is read afterwards.
        var failedButWrote = new[]
        {
            Set(1, "k", "a", 0, 1),
            Txn(2, [TxnCondition.Absent("k")], [TxnStep.Put("k", "b")], [TxnStep.Get("k")], 2, 3, succeeded: false, [TxnSeen.Of("a")]),
            Get(1, "k", 4, 5, "b"),
        };

        LinearizabilityChecker.Check(wrongBranch).Linearizable.Should().BeFalse();
        LinearizabilityChecker.Check(heldWhenItDidNot).Linearizable.Should().BeFalse();
        LinearizabilityChecker.Check(failedButWrote).Linearizable.Should().BeFalse();
    }

    [Fact]
    public void A_transaction_whose_outcome_is_unknown_takes_effect_whole_or_not_at_all()
    {
        Operation[] Before() =>
        [
            Txn(1, [], [TxnStep.Put("a", "a1"), TxnStep.Put("b", "b1")], [], 0, 1, succeeded: true, [new(true), new(true)]),
            Txn(2, [TxnCondition.ValueIs("a", "a1")], [TxnStep.Put("a", "a2"), TxnStep.Put("b", "b2")], [], 5, Unknown, succeeded: false),
        ];
        var late = Before().Concat([Get(3, "a", 10, 11, "a1"), Get(3, "a", 100, 101, "a2"), Get(3, "b", 102, 103, "b2")]);
        var never = Before().Concat([Get(3, "a", 100, 101, "a1"), Get(3, "b", 102, 103, "b1")]);
        var half = Before().Concat([Get(3, "a", 100, 101, "a2"), Get(3, "b", 102, 103, "b1")]);

        LinearizabilityChecker.Check(late).Linearizable.Should().BeTrue();
        LinearizabilityChecker.Check(never).Linearizable.Should().BeTrue();
        LinearizabilityChecker.Check(half).Linearizable.Should().BeFalse("a transaction is applied whole or not at all");
    }

    [Fact]
    public void A_version_comparison_holds_exactly_while_the_key_keeps_the_value_read_with_that_version()
    {
        var holds = new[]
        {
            Set(1, "k", "a", 0, 1),
            Txn(2, [TxnCondition.VersionIs("k", 7, "a")], [TxnStep.Put("k", "b")], [TxnStep.Get("k")], 2, 3, succeeded: true, [new(true)]),
            Txn(2, [TxnCondition.VersionIs("k", 0, null)], [TxnStep.Put("k", "c")], [TxnStep.Get("k")], 4, 5, succeeded: false, [TxnSeen.Of("b")]),
        };
        var heldAfterAWrite = new[]
        {
            Set(1, "k", "a", 0, 1),
            Set(1, "k", "b", 2, 3),
            Txn(2, [TxnCondition.VersionIs("k", 7, "a")], [TxnStep.Put("k", "c")], [TxnStep.Get("k")], 4, 5, succeeded: true, [new(true)]),
        };

        LinearizabilityChecker.Check(holds).Linearizable.Should().BeTrue();
        LinearizabilityChecker.Check(heldAfterAWrite).Linearizable.Should().BeFalse();
    }

    [Fact]
    public void A_busy_history_of_transactions_on_two_keys_is_decided_and_one_torn_read_in_it_fails()
    {
        // Ten clients, 400 operations on two keys, half of them transactions, some with unknown outcomes (applied or
        // not); each takes effect at a point inside its window, and what it saw is what the keys held at that point.
        var random = new Random(7);
        var free = new long[10];
        var planned = new List<(int Client, long Call, long Effect, long Return, int Index)>();
        for (var i = 0; i < 400; i++)
        {
            var client = Array.IndexOf(free, free.Min());
            var call = free[client] + random.Next(0, 3);
            var effect = call + random.Next(0, 5);
            var done = effect + random.Next(0, 5);
            free[client] = done + 1;
            planned.Add((client, call, effect, done, i));
        }
        var state = new Dictionary<string, string?>(StringComparer.Ordinal) { ["a"] = null, ["b"] = null };
        var history = new List<Operation>();
        var pairReads = new List<int>();
        foreach (var op in planned.OrderBy(p => p.Effect).ThenBy(p => p.Index))
        {
            var unknown = random.Next(20) == 0;
            var applied = !unknown || random.Next(2) == 0;
            var key = random.Next(2) == 0 ? "a" : "b";
            var other = key == "a" ? "b" : "a";
            var value = $"v{op.Index}";
            Operation operation;
            switch (random.Next(6))
            {
                case 0:
                    operation = Get(op.Client, key, op.Call, op.Return, state[key]);
                    break;
                case 1:
                    operation = Set(op.Client, key, value, op.Call, unknown ? Unknown : op.Return);
                    state[key] = applied ? value : state[key];
                    break;
                case 2:
                    pairReads.Add(history.Count);
                    operation = Txn(op.Client, [], [TxnStep.Get(key), TxnStep.Get(other)], [], op.Call, op.Return, succeeded: true,
                        [Saw(state[key]), Saw(state[other])]);
                    break;
                default:
                    // Compare the key with its value now half the time (and with a stale guess otherwise), then write both
                    // keys, or read both.
                    var expected = random.Next(2) == 0 ? state[key] ?? "none" : "stale";
                    var holds = state[key] == expected;
                    var seen = holds ? new List<TxnSeen> { new(true), new(true) } : [Saw(state[key]), Saw(state[other])];
                    operation = Txn(op.Client, [TxnCondition.ValueIs(key, expected)], [TxnStep.Put(key, value), TxnStep.Put(other, value + "'")],
                        [TxnStep.Get(key), TxnStep.Get(other)], op.Call, unknown ? Unknown : op.Return, holds, unknown ? [] : seen);
                    if (holds && applied)
                    {
                        (state[key], state[other]) = (value, value + "'");
                    }
                    break;
            }
            history.Add(operation);
        }

        var result = LinearizabilityChecker.Check(history);

        result.Linearizable.Should().BeTrue(result.Report);
        // Now one atomic read, late in the run, sees one key from the previous pair read's time: torn, or stale.
        var victim = pairReads[^5];
        var earlier = history[pairReads[^20]];
        var read = history[victim];
        var tornRead = read with { Seen = [read.Seen[0], earlier.Seen[read.Success[1].Key == earlier.Success[0].Key ? 0 : 1]] };
        tornRead.Seen.Should().NotEqual(read.Seen, "the victim's second key changed since the earlier read");
        history[victim] = tornRead;
        var torn = LinearizabilityChecker.Check(history);
        torn.Linearizable.Should().BeFalse();
        torn.Report.Should().Contain(tornRead.ToString(), "the torn read is the operation no order can place");
    }

    private static TxnSeen Saw(string? value) => value is null ? TxnSeen.Absent : TxnSeen.Of(value);

    [Fact]
    public void The_search_agrees_with_a_brute_force_one_on_small_random_histories()
    {
        // The search prunes (a configuration with more unknown outcomes placed is dominated by one with fewer; values no
        // one observes are merged): on 3,000 small histories on two keys, half built to be linearizable and half with one
        // answer changed, it must decide as trying every order does.
        var random = new Random(3);
        var (agreed, linearizable) = (0, 0);
        for (var round = 0; round < 3_000; round++)
        {
            var history = RandomHistory(random, random.Next(2, 8));
            var expected = BruteForce(history);
            var result = LinearizabilityChecker.Check(history);
            result.Linearizable.Should().Be(expected, string.Join("\n", history.OrderBy(o => o.Call)));
            agreed++;
            linearizable += expected ? 1 : 0;
        }
        agreed.Should().Be(3_000);
        linearizable.Should().BeInRange(900, 2_700, "both verdicts are exercised");
    }

    /// <summary>Operations that take effect at a point of their window, what they saw taken from that point; then, half the time, one answer changed.</summary>
    private static List<Operation> RandomHistory(Random random, int count)
    {
        string[] keys = ["a", "b"];
        string?[] values = [null, "1", "2", "3"];
        var state = new Dictionary<string, string?>(StringComparer.Ordinal) { ["a"] = null, ["b"] = null };
        var history = new List<Operation>();
        var planned = Enumerable.Range(0, count).Select(_ => random.Next(0, 12)).Order().ToList();
        var written = 0;
        foreach (var effect in planned)
        {
            var call = effect - random.Next(0, 4);
            var ret = random.Next(6) == 0 ? Unknown : effect + random.Next(0, 4);
            var applied = ret != Unknown || random.Next(2) == 0;
            var key = keys[random.Next(2)];
            var other = key == "a" ? "b" : "a";
            var value = random.Next(3) == 0 ? $"u{written++}" : values[random.Next(1, 4)]!; // some values no one reads
            Operation operation;
            switch (random.Next(5))
            {
                case 0:
                    operation = Get(0, key, call, ret == Unknown ? effect + 1 : ret, state[key]);
                    break;
                case 1:
                    operation = Set(0, key, value, call, ret);
                    if (applied)
                    {
                        state[key] = value;
                    }
                    break;
                case 2:
                    operation = Delete(0, key, call, ret, state[key] is not null);
                    if (applied)
                    {
                        state[key] = null;
                    }
                    break;
                case 3:
                    var expected = values[random.Next(1, 4)]!;
                    operation = Cas(0, key, expected, value, call, ret, state[key] == expected);
                    if (applied && state[key] == expected)
                    {
                        state[key] = value;
                    }
                    break;
                default:
                    var condition = random.Next(3) switch
                    {
                        0 => TxnCondition.ValueIs(key, values[random.Next(1, 4)]!),
                        1 => TxnCondition.Exists(key),
                        _ => TxnCondition.Absent(key),
                    };
                    IReadOnlyList<TxnStep> success = random.Next(2) == 0
                        ? [TxnStep.Put(key, value), TxnStep.Get(other)]
                        : [TxnStep.Delete(key), TxnStep.Put(other, value)];
                    IReadOnlyList<TxnStep> failure = [TxnStep.Get(key), TxnStep.Get(other)];
                    var holds = condition.Holds(state[key]);
                    var seen = new List<TxnSeen>();
                    foreach (var step in holds ? success : failure)
                    {
                        seen.Add(step.Kind switch
                        {
                            TxnStepKind.Get => Saw(state[step.Key]),
                            TxnStepKind.Delete => new(state[step.Key] is not null),
                            _ => new(true),
                        });
                        if (applied && step.Kind != TxnStepKind.Get)
                        {
                            state[step.Key] = step.Kind == TxnStepKind.Put ? step.Value : null;
                        }
                    }
                    operation = Txn(0, [condition], success, failure, call, ret, holds, ret == Unknown ? [] : seen);
                    break;
            }
            history.Add(operation with { Client = history.Count });
        }
        if (random.Next(2) == 0)
        {
            var known = history.Select((o, i) => (o, i)).Where(x => !x.o.Unknown).ToList();
            if (known.Count > 0)
            {
                var (victim, at) = known[random.Next(known.Count)];
                history[at] = victim.Kind switch
                {
                    OperationKind.Get => values[random.Next(4)] is var read ? victim with { Read = read, Found = read is not null } : victim,
                    OperationKind.Delete => victim with { Found = !victim.Found },
                    OperationKind.Cas or OperationKind.Txn => victim with { Succeeded = !victim.Succeeded },
                    _ => victim,
                };
            }
        }
        return history;
    }

    /// <summary>Every order consistent with real time, each operation checked against a model written again here; unknown outcomes may be left out.</summary>
    private static bool BruteForce(List<Operation> history)
    {
        var placed = new bool[history.Count];
        bool Search(Dictionary<string, string?> state)
        {
            if (history.Select((o, i) => o.Unknown || placed[i]).All(x => x))
            {
                return true;
            }
            for (var i = 0; i < history.Count; i++)
            {
                var operation = history[i];
                if (placed[i] || history.Where((o, j) => !placed[j] && j != i).Any(o => o.Return < operation.Call))
                {
                    continue;
                }
                var next = new Dictionary<string, string?>(state, StringComparer.Ordinal);
                if (!Apply(next, operation))
                {
                    continue;
                }
                placed[i] = true;
                var found = Search(next);
                placed[i] = false;
                if (found)
                {
                    return true;
                }
            }
            return false;
        }
        return Search(new Dictionary<string, string?>(StringComparer.Ordinal));
    }

    private static bool Apply(Dictionary<string, string?> state, Operation operation)
    {
        string? Value(string key) => state.GetValueOrDefault(key);
        var known = !operation.Unknown;
        switch (operation.Kind)
        {
            case OperationKind.Get:
                return !known || operation.Read == Value(operation.Key);
            case OperationKind.Set:
                state[operation.Key] = operation.Value;
                return true;
            case OperationKind.Delete:
                var existed = Value(operation.Key) is not null;
                state[operation.Key] = null;
                return !known || operation.Found == existed;
            case OperationKind.Cas:
                var matches = Value(operation.Key) == operation.Expected;
                if (matches)
                {
                    state[operation.Key] = operation.Value;
                }
                return !known || operation.Succeeded == matches;
            default:
                var holds = operation.Conditions.All(c => c.Kind switch
                {
                    ConditionKind.ValueIs => Value(c.Key) == c.Value,
                    ConditionKind.Exists => Value(c.Key) is not null,
                    _ => Value(c.Key) is null,
                });
                if (known && holds != operation.Succeeded)
                {
                    return false;
                }
                var steps = holds ? operation.Success : operation.Failure;
                for (var i = 0; i < steps.Count; i++)
                {
                    var current = Value(steps[i].Key);
                    var saw = known ? operation.Seen[i] : null;
                    if (steps[i].Kind == TxnStepKind.Get && saw is not null && (saw.Found != (current is not null) || saw.Value != current))
                    {
                        return false;
                    }
                    if (steps[i].Kind == TxnStepKind.Delete && saw is not null && saw.Found != (current is not null))
                    {
                        return false;
                    }
                    if (steps[i].Kind != TxnStepKind.Get)
                    {
                        state[steps[i].Key] = steps[i].Kind == TxnStepKind.Put ? steps[i].Value : null;
                    }
                }
                return true;
        }
    }
}
