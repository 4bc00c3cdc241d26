namespace RaftKv.StateMachine.Tests;

/// <summary>
/// The KV store's ordered map: the same answers as a sorted dictionary under random inserts, updates and deletes, a
/// shape that stays a B+ tree, and clones that neither side's later changes reach.
/// </summary>
public sealed class KvMapTests
{
    [Theory]
    [InlineData(1, 8)]
    [InlineData(2, 8)]
    [InlineData(3, 9)]
    [InlineData(4, KvMap<int>.DefaultCapacity)]
    public void Random_writes_and_deletes_give_what_a_sorted_dictionary_gives(int seed, int capacity)
    {
        var random = new Random(seed);
        var map = new KvMap<int>(capacity);
        var model = new SortedDictionary<string, int>(StringComparer.Ordinal);
        for (var step = 0; step < 20_000; step++)
        {
            // Keys from a space of 3,000 so that writes, updates and deletes all happen; deletes come in bursts that
            // empty whole stretches of the tree, so that nodes merge and the tree gets shorter again.
            var key = "k" + random.Next(3_000).ToString("D4", System.Globalization.CultureInfo.InvariantCulture);
            var deleting = (step / 2_000) % 3 == 2 ? random.Next(10) < 9 : random.Next(10) < 3;
            if (deleting)
            {
                map.Remove(key).Should().Be(model.Remove(key), "removing {0} at step {1}", key, step);
            }
            else
            {
                map.Set(key, step).Should().Be(model.TryAdd(key, step), "setting {0} at step {1}", key, step);
                model[key] = step;
            }
            if (step % 500 == 0)
            {
                map.CheckShape();
                map.All().Should().Equal(model, "at step {0}", step);
            }
        }
        map.CheckShape();
        map.Count.Should().Be(model.Count);
        map.All().Should().Equal(model);
        foreach (var probe in new[] { "", "k", "k0000", "k1500", "k15", "k2999", "k3", "l" })
        {
            map.Rank(probe).Should().Be(model.Keys.Count(k => string.CompareOrdinal(k, probe) < 0), "the rank of '{0}'", probe);
            map.From(probe).Should().Equal(model.Where(p => string.CompareOrdinal(p.Key, probe) >= 0), "from '{0}'", probe);
            map.From(probe, inclusive: false).Should().Equal(model.Where(p => string.CompareOrdinal(p.Key, probe) > 0), "after '{0}'", probe);
            map.TryGetValue(probe, out var value).Should().Be(model.TryGetValue(probe, out var expected));
            value.Should().Be(expected);
        }
    }

    [Fact]
    public void A_clone_keeps_what_it_held_while_the_original_changes_and_the_other_way_round()
    {
        var map = new KvMap<int>(8);
        for (var i = 0; i < 1_000; i++)
        {
            map.Set(Key(i), i);
        }
        var frozen = map.Clone();
        var frozenAgain = map.Clone();
        for (var i = 0; i < 1_000; i += 2)
        {
            map.Remove(Key(i));
        }
        for (var i = 1; i < 1_000; i += 2)
        {
            map.Set(Key(i), -i);
        }
        for (var i = 1_000; i < 1_500; i++)
        {
            map.Set(Key(i), i);
        }
        frozenAgain.Set(Key(5), 55);
        frozenAgain.Remove(Key(6));

        map.CheckShape();
        frozen.CheckShape();
        frozenAgain.CheckShape();
        frozen.All().Should().Equal(Enumerable.Range(0, 1_000).Select(i => new KeyValuePair<string, int>(Key(i), i)));
        map.All().Should().Equal(Enumerable.Range(0, 1_000).Where(i => i % 2 == 1).Select(i => new KeyValuePair<string, int>(Key(i), -i))
            .Concat(Enumerable.Range(1_000, 500).Select(i => new KeyValuePair<string, int>(Key(i), i))));
        frozenAgain.Count.Should().Be(999);
        frozenAgain.TryGetValue(Key(5), out var five).Should().BeTrue();
        five.Should().Be(55);
        map.TryGetValue(Key(5), out var mapFive).Should().BeTrue();
        mapFive.Should().Be(-5);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(9)]
    [InlineData(65)]
    [InlineData(1_000)]
    public void A_map_built_from_sorted_items_holds_them_in_full_nodes_and_takes_writes(int count)
    {
        var items = Enumerable.Range(0, count).Select(i => new KeyValuePair<string, int>(Key(i), i)).ToList();

        var map = KvMap<int>.FromSorted(items, 8);

        map.CheckShape();
        map.Count.Should().Be(count);
        map.All().Should().Equal(items);
        map.Set("a", -1).Should().BeTrue();
        map.Remove(Key(0)).Should().Be(count > 0);
        map.CheckShape();
        map.Count.Should().Be(Math.Max(count, 1), "one key added, one removed (when there was one)");
    }

    [Fact]
    public void Items_out_of_order_are_refused_when_building()
    {
        var build = () => KvMap<int>.FromSorted([new("b", 1), new("a", 2)]);

        build.Should().Throw<ArgumentException>().WithMessage("*'a' comes after 'b'*");
    }

    [Fact]
    public void Keys_sort_by_UTF16_code_units_as_string_CompareOrdinal_does()
    {
        var map = new KvMap<int>(8);
        string[] keys = ["\uFB01", "\U0001F600", "a", "", "ab", "\u00E9"];
        foreach (var key in keys)
        {
            map.Set(key, 0);
        }

        map.All().Select(p => p.Key).Should().Equal(keys.Order(StringComparer.Ordinal));
    }

    private static string Key(int i) => "key-" + i.ToString("D5", System.Globalization.CultureInfo.InvariantCulture);
}
