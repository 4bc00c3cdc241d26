namespace RaftKv.Node;

/// <summary>
/// Rare paths made common on purpose, after FoundationDB's BUGGIFY: at a few points the loop asks whether to take the
/// unusual path this time. Only the simulator passes one, drawn from its seed and bounded by it; without one (every host)
/// each point is off and the loop behaves exactly as it always does. Every point stays inside the Ready contract
/// (<see cref="RaftLoop"/>'s HandleReady): a Ready is still handled whole and advanced before the next is taken, and
/// nothing that promises persisted state leaves before it is persisted.
/// </summary>
public interface IBuggify
{
    /// <summary>Whether to take the rare path at <paramref name="point"/> this time.</summary>
    bool Fires(BuggifyPoint point);
}

/// <summary>The places where the loop asks <see cref="IBuggify"/>.</summary>
public enum BuggifyPoint
{
    /// <summary>
    /// Take a snapshot now, below the threshold, and compact every entry it covers (none kept behind). A follower whose
    /// acknowledgements are still in flight then needs a snapshot although it may hold entries past it. Asked at the end
    /// of a turn.
    /// </summary>
    SnapshotNow,

    /// <summary>
    /// The same early snapshot that compacts everything, asked only at the end of a turn that saw an awkward moment: a
    /// configuration entry appended or applied, an InstallSnapshot sent, or this node just elected (its first entry not
    /// yet committed). The snapshot then falls between a configuration entry and its commit, or lands while a follower
    /// installs the one before it.
    /// </summary>
    SnapshotAtAwkwardMoment,

    /// <summary>
    /// A ready batch split: after this input, the loop takes the Readys of what it stepped so far before stepping the
    /// rest of the turn's inputs, so that one turn persists and sends in several smaller Readys. Asked after every input
    /// but the last of a turn.
    /// </summary>
    SplitBatch,

    /// <summary>
    /// A ready batch merged: the loop takes no Ready this turn. What the turn stepped stays in the core, unpersisted and
    /// unsent, and goes out with the next turn's work as one Ready (one append, one fsync). Never twice in a row, never
    /// in a turn that received a snapshot (its staged file lives for one turn).
    /// </summary>
    MergeWithNextTurn,

    /// <summary>
    /// A delayed persistence acknowledgement: the messages of this Ready that promise what it persisted (votes,
    /// acknowledgements of appends) leave in the next turn, after that turn's first Ready is persisted, with its own,
    /// as if the two Readys had shared one fsync (or at the end of that turn if it has none). Messages of a term the node
    /// has since left are dropped then, as the network may drop them.
    /// </summary>
    AcknowledgeLate,
}
