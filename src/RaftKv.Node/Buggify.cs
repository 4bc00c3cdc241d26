namespace RaftKv.Node;

/// <summary>
/// Rare paths made common on purpose, after FoundationDB's BUGGIFY: at a few points the loop asks whether to take the
/// unusual path this time. Only the simulator passes one, drawn from its seed and bounded by it; without one (every host)
/// each point is off and the loop behaves exactly as it always does.
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
    /// acknowledgements are still in flight then needs a snapshot although it may hold entries past it.
    /// </summary>
    SnapshotNow,
}
