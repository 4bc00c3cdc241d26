using RaftKv.RaftCore;

namespace RaftKv.StateMachine.Tests;

/// <summary>Prefix listings: pages in ordinal key order, counts, and the same answers as a naive scan of every key.</summary>
public sealed class KvRangeTests
{
    private ulong _index;

    private void Set(KvStateMachine machine, string key, string value = "v") =>
        machine.Apply(new LogEntry(new LogIndex(++_index), new Term(1), EntryKind.Normal, new KvCommand(KvOperation.Set, key, value).Encode()));

    private void Delete(KvStateMachine machine, string key) =>
        machine.Apply(new LogEntry(new LogIndex(++_index), new Term(1), EntryKind.Normal, new KvCommand(KvOperation.Delete, key).Encode()));

    private static KvRangeResult Query(KvStateMachine machine, KvRangeQuery query) => KvRangeResult.Decode(machine.Query(query.Encode()).Span);

    [Fact]
    public void A_prefix_lists_its_keys_in_order_a_page_at_a_time_with_the_count_of_all()
    {
        var machine = new KvStateMachine();
        foreach (var key in new[] { "svc/b", "svc/a", "svc", "svd/x", "sv", "svc/c/1" })
        {
            Set(machine, key, "value of " + key);
        }

        var first = Query(machine, new KvRangeQuery("svc/", null, 2));
        var second = Query(machine, new KvRangeQuery("svc/", first.Items[^1].Key, 2));

        first.Items.Select(i => i.Key).Should().Equal("svc/a", "svc/b");
        first.Items[0].Value.Should().Be("value of svc/a");
        first.Count.Should().Be(3);
        first.More.Should().BeTrue();
        second.Items.Select(i => i.Key).Should().Equal("svc/c/1");
        second.More.Should().BeFalse();
        Query(machine, new KvRangeQuery("svc/", null, 10, CountOnly: true)).Should().Match<KvRangeResult>(r => r.Count == 3 && r.Items.Count == 0);
        Query(machine, new KvRangeQuery("", null, 10)).Items.Select(i => i.Key).Should().Equal("sv", "svc", "svc/a", "svc/b", "svc/c/1", "svd/x");
        Query(machine, new KvRangeQuery("nothing/", null, 10)).Should().Match<KvRangeResult>(r => r.Count == 0 && r.Items.Count == 0 && !r.More);
    }

    [Fact]
    public void A_deleted_key_leaves_the_listing_and_a_restored_snapshot_lists_the_same()
    {
        var machine = new KvStateMachine();
        Set(machine, "a/1");
        Set(machine, "a/2");
        Set(machine, "a/2", "again");
        Delete(machine, "a/1");

        using var stream = new MemoryStream();
        machine.CaptureSnapshot().WriteTo(stream);
        stream.Position = 0;
        var restored = new KvStateMachine();
        restored.Restore(stream);

        foreach (var node in new[] { machine, restored })
        {
            var listed = Query(node, new KvRangeQuery("a/", null, 10));
            listed.Items.Should().ContainSingle().Which.Should().Be(new KvRangeItem("a/2", "again", 3));
        }
    }

    [Fact]
    public void Random_listings_equal_a_naive_scan_of_every_key()
    {
        var random = new Random(42);
        var machine = new KvStateMachine();
        var model = new SortedDictionary<string, string>(StringComparer.Ordinal);
        string RandomKey() => string.Concat(Enumerable.Range(0, random.Next(0, 5)).Select(_ => "ab/\uffffé"[random.Next(5)]));
        for (var step = 0; step < 3_000; step++)
        {
            var key = RandomKey();
            if (random.Next(4) == 0)
            {
                Delete(machine, key);
                model.Remove(key);
            }
            else
            {
                Set(machine, key, "v" + step);
                model[key] = "v" + step;
            }
            if (step % 10 != 0)
            {
                continue;
            }
            var prefix = RandomKey();
            var after = random.Next(3) == 0 ? RandomKey() : null;
            var limit = random.Next(1, 8);
            var matching = model.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToList();
            var expected = matching.Where(k => after is null || string.CompareOrdinal(k, after) > 0).ToList();

            var page = Query(machine, new KvRangeQuery(prefix, after, limit));

            page.Items.Select(i => i.Key).Should().Equal(expected.Take(limit), "prefix '{0}' after '{1}' limit {2}", prefix, after, limit);
            page.Items.Where(i => model[i.Key] != i.Value).Should().BeEmpty("every listed value is the stored one");
            page.Count.Should().Be(matching.Count);
            page.More.Should().Be(expected.Count > limit);
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(KvRangeQuery.MaxLimit + 1)]
    public void A_query_with_a_limit_out_of_bounds_does_not_decode(int limit)
    {
        var bytes = new KvRangeQuery("p", null, limit).Encode();

        var decode = () => KvRangeQuery.Decode(bytes);

        decode.Should().Throw<FormatException>().WithMessage("*limit*");
    }

    [Fact]
    public void A_result_round_trips_through_its_bytes()
    {
        var result = new KvRangeResult([new KvRangeItem("k/1", "é", 7), new KvRangeItem("k/2", "", 9)], 5, More: true, Index: 12);

        var decoded = KvRangeResult.Decode(result.Encode());

        decoded.Items.Should().Equal(result.Items);
        decoded.Should().Match<KvRangeResult>(r => r.Count == 5 && r.More && r.Index == 12);
    }
}
