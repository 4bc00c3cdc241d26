namespace RaftKv.RaftCore.Tests;

public sealed class RaftLogTests
{
    /// <summary>A log whose entry i (from 1) has the term terms[i-1].</summary>
    private static RaftLog LogWithTerms(params ulong[] terms) =>
        new(LogIndex.Zero, Term.Zero, [.. terms.Select((t, i) => Entry((ulong)i + 1, t))], LogIndex.Zero, null);

    private static LogEntry Entry(ulong index, ulong term) => new(new LogIndex(index), new Term(term), EntryKind.Normal, new byte[] { (byte)index });

    private static ulong[] Terms(RaftLog log) => [.. Enumerable.Range(1, (int)log.LastIndex.Value).Select(i => log.TermAt(new LogIndex((ulong)i))!.Value.Value)];

    [Theory]
    // our terms        prev idx/term  leader's entries (terms, from prev+1)  accepted  terms after
    [InlineData(new ulong[] { 1, 1, 1 }, 3, 1, new ulong[] { 2 }, true, new ulong[] { 1, 1, 1, 2 })]
    [InlineData(new ulong[] { 1, 1, 1 }, 1, 1, new ulong[] { 1, 1 }, true, new ulong[] { 1, 1, 1 })]
    [InlineData(new ulong[] { 1, 1, 1 }, 1, 1, new ulong[] { 1 }, true, new ulong[] { 1, 1, 1 })]
    [InlineData(new ulong[] { 1, 1, 2, 2 }, 2, 1, new ulong[] { 3 }, true, new ulong[] { 1, 1, 3 })]
    [InlineData(new ulong[] { 1, 1, 2, 2 }, 1, 1, new ulong[] { 1, 3, 3, 3, 3 }, true, new ulong[] { 1, 1, 3, 3, 3, 3 })]
    [InlineData(new ulong[] { 1, 1 }, 3, 1, new ulong[] { 1 }, false, new ulong[] { 1, 1 })]
    [InlineData(new ulong[] { 1, 1, 2 }, 3, 3, new ulong[] { 3 }, false, new ulong[] { 1, 1, 2 })]
    [InlineData(new ulong[] { }, 0, 0, new ulong[] { 1, 1 }, true, new ulong[] { 1, 1 })]
    public void A_follower_appends_after_a_matching_entry_and_cuts_at_the_first_conflict(
        ulong[] ours, ulong prevIndex, ulong prevTerm, ulong[] theirs, bool accepted, ulong[] after)
    {
        var log = LogWithTerms(ours);
        var entries = theirs.Select((t, i) => Entry(prevIndex + (ulong)i + 1, t)).ToList();

        var result = log.TryAppend(new LogIndex(prevIndex), new Term(prevTerm), entries);

        result.Should().Be(accepted);
        Terms(log).Should().Equal(after);
    }

    [Theory]
    // entry i holds i·10 bytes; from, through, the data bytes and entries inside
    [InlineData(1, 4, 100, 4)]
    [InlineData(2, 3, 50, 2)]
    [InlineData(3, 3, 30, 1)]
    [InlineData(4, 2, 0, 0)]
    [InlineData(1, 9, 100, 4)]
    public void BytesBetween_counts_the_entries_of_the_range_that_the_log_holds(ulong from, ulong through, int dataBytes, int entries)
    {
        var log = new RaftLog(LogIndex.Zero, Term.Zero,
            [.. Enumerable.Range(1, 4).Select(i => new LogEntry(new LogIndex((ulong)i), new Term(1), EntryKind.Normal, new byte[i * 10]))],
            LogIndex.Zero, null);

        var bytes = log.BytesBetween(new LogIndex(from), new LogIndex(through));

        bytes.Should().Be(dataBytes + (entries * LogEntry.OverheadBytes));
        bytes.Should().Be(log.Slice(new LogIndex(from), new LogIndex(through), long.MaxValue).Sum(e => e.SizeBytes));
    }

    [Theory]
    // entry i holds i·10 bytes and LogEntry.OverheadBytes; a slice always holds its first entry, then stops before the
    // entry that would pass maxBytes
    [InlineData(long.MaxValue, 4)]
    [InlineData(80, 2)]
    [InlineData(77, 1)]
    [InlineData(1, 1)]
    public void A_slice_stops_before_the_entry_that_passes_maxBytes_and_says_how_many_bytes_it_holds(long maxBytes, int entries)
    {
        var log = new RaftLog(LogIndex.Zero, Term.Zero,
            [.. Enumerable.Range(1, 4).Select(i => new LogEntry(new LogIndex((ulong)i), new Term(1), EntryKind.Normal, new byte[i * 10]))],
            LogIndex.Zero, null);

        var slice = log.Slice(new LogIndex(1), new LogIndex(4), maxBytes, out var bytes);

        slice.Should().HaveCount(entries);
        bytes.Should().Be(slice.Sum(e => e.SizeBytes));
        bytes.Should().Be(Enumerable.Range(1, entries).Sum(i => (i * 10) + LogEntry.OverheadBytes));
    }

    [Theory]
    // our terms                 refused prev   hint index/term
    [InlineData(new ulong[] { 1, 1, 2, 2, 2 }, 5, 3, 2)]
    [InlineData(new ulong[] { 1, 1, 2, 2, 2 }, 4, 3, 2)]
    [InlineData(new ulong[] { 1, 1, 2, 2, 2 }, 2, 1, 1)]
    [InlineData(new ulong[] { 1, 1, 2 }, 7, 4, 0)]
    [InlineData(new ulong[] { 3, 3, 3 }, 3, 1, 3)]
    public void A_refusal_hints_at_our_term_and_its_first_index(ulong[] ours, ulong refusedPrev, ulong hintIndex, ulong hintTerm)
    {
        var log = LogWithTerms(ours);

        var (index, term) = log.ConflictHint(new LogIndex(refusedPrev));

        index.Should().Be(new LogIndex(hintIndex));
        term.Should().Be(new Term(hintTerm));
    }

    [Fact]
    public void Committed_entries_are_never_cut()
    {
        var log = LogWithTerms(1, 1, 2);
        log.CommitTo(new LogIndex(3));

        var conflict = () => log.TryAppend(new LogIndex(2), new Term(1), [Entry(3, 3)]);

        conflict.Should().Throw<InvariantViolationException>().WithMessage("*conflict at i3 at or below commit i3*");
    }

    [Fact]
    public void Commit_never_passes_the_last_index_and_never_goes_back()
    {
        var log = LogWithTerms(1, 1);
        log.CommitTo(new LogIndex(2));
        log.CommitTo(new LogIndex(1));

        log.Committed.Should().Be(new LogIndex(2));
        var beyond = () => log.CommitTo(new LogIndex(3));
        beyond.Should().Throw<InvariantViolationException>();
    }

    [Fact]
    public void Entries_are_applied_only_once_committed_and_persisted()
    {
        var log = LogWithTerms(1);
        log.Append(Entry(2, 1));
        log.Append(Entry(3, 1));
        log.CommitTo(new LogIndex(3));

        log.ToApply(long.MaxValue).Select(e => e.Index.Value).Should().Equal(1);

        log.PersistedTo(new LogIndex(3), new Term(1));
        log.ToApply(long.MaxValue).Select(e => e.Index.Value).Should().Equal(1, 2, 3);
    }

    [Fact]
    public void Compaction_keeps_the_base_term_and_the_configuration_in_force()
    {
        var config = ClusterConfig.Create([new NodeId(1), new NodeId(2), new NodeId(3)]);
        var log = new RaftLog(LogIndex.Zero, Term.Zero,
            [new LogEntry(new LogIndex(1), new Term(1), EntryKind.Config, config.Encode()), Entry(2, 1), Entry(3, 2), Entry(4, 2)],
            new LogIndex(4), null);
        log.AppliedTo(new LogIndex(4));

        log.SnapshotTaken(new SnapshotMetadata(new LogIndex(4), new Term(2), config), new LogIndex(3));

        log.FirstIndex.Should().Be(new LogIndex(4));
        log.TermAt(new LogIndex(3)).Should().Be(new Term(2));
        log.TermAt(new LogIndex(2)).Should().BeNull();
        log.Config.Should().Be(config);
    }
}
