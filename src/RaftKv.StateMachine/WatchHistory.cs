using System.Text;

namespace RaftKv.StateMachine;

public enum WatchEventType : byte
{
    Put = 1,
    Delete = 2,
}

/// <summary>
/// One change of one key: at <see cref="Revision"/> (the log index of the write; a transaction's changes share it and are
/// told apart by <see cref="Sequence"/>), with the value before it. The values are kept as the store keeps them, in UTF-8,
/// and turned into strings only when a watcher reads them: most changes are never watched.
/// </summary>
public sealed class WatchEvent
{
    private readonly byte[]? _value;
    private readonly byte[]? _previousValue;

    public WatchEvent(ulong revision, int sequence, WatchEventType type, string key, string? value, string? previousValue)
        : this(revision, sequence, type, key, value is null ? null : Encoding.UTF8.GetBytes(value), previousValue is null ? null : Encoding.UTF8.GetBytes(previousValue))
    {
    }

    internal WatchEvent(ulong revision, int sequence, WatchEventType type, string key, byte[]? value, byte[]? previousValue)
    {
        Revision = revision;
        Sequence = sequence;
        Type = type;
        Key = key;
        _value = value;
        _previousValue = previousValue;
    }

    public ulong Revision { get; }

    public int Sequence { get; }

    public WatchEventType Type { get; }

    public string Key { get; }

    public string? Value => _value is null ? null : Encoding.UTF8.GetString(_value);

    public string? PreviousValue => _previousValue is null ? null : Encoding.UTF8.GetString(_previousValue);

    /// <summary>The SSE event id: "revision.sequence", ordered as the events are.</summary>
    public string Id => $"{Revision}.{Sequence}";

    /// <summary>
    /// Room for the serving layer to keep this change's encoding, so that it is encoded once however many watchers send
    /// it (written at most a few times, with the same bytes); <see cref="EncodedWithPrevious"/> also holds the value before.
    /// </summary>
    public byte[]? Encoded { get; set; }

    public byte[]? EncodedWithPrevious { get; set; }

    /// <summary>Parses an id written by <see cref="Id"/> (or a bare revision: after all of that revision's events).</summary>
    public static bool TryParseId(string? text, out ulong revision, out int sequence)
    {
        revision = 0;
        sequence = int.MaxValue;
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }
        var dot = text.IndexOf('.', StringComparison.Ordinal);
        if (dot < 0)
        {
            return ulong.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out revision);
        }
        return ulong.TryParse(text.AsSpan(0, dot), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out revision)
            && int.TryParse(text.AsSpan(dot + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out sequence);
    }
}

/// <summary>
/// The last <see cref="Capacity"/> changes this node applied, in order, for watchers: a ring written by the apply path
/// (the node loop) and read by any number of watchers, each at its own position, so a slow watcher costs no memory; one
/// that falls behind the ring's start has missed events and must start again from a listing. Not replicated and not in
/// snapshots: after a restore it starts at the snapshot's index, and older revisions are answered "compacted".
/// </summary>
public sealed class WatchHistory
{
    private readonly Lock _lock = new();
    private readonly WatchEvent[] _ring;
    private long _written; // events ever appended; the ring holds the last min(_written, Capacity)
    private ulong _compactedThrough; // every change at or below this revision may be gone
    private TaskCompletionSource _appended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _awaited; // a reader holds _appended's task: only then does an append complete and replace it

    public WatchHistory(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _ring = new WatchEvent[capacity];
    }

    public int Capacity => _ring.Length;

    /// <summary>Every change after this revision is here (or still to come); at or below it some may be gone.</summary>
    public ulong CompactedThrough
    {
        get
        {
            lock (_lock)
            {
                return _compactedThrough;
            }
        }
    }

    /// <summary>The changes of one applied write (the apply path only; empty for a write that changed nothing).</summary>
    public void Append(IReadOnlyList<WatchEvent> events)
    {
        if (events.Count == 0)
        {
            return;
        }
        TaskCompletionSource? appended = null;
        lock (_lock)
        {
            foreach (var change in events)
            {
                var slot = (int)(_written % _ring.Length);
                if (_written >= _ring.Length)
                {
                    _compactedThrough = Math.Max(_compactedThrough, _ring[slot].Revision);
                }
                _ring[slot] = change;
                _written++;
            }
            if (_awaited)
            {
                // Every applied write comes here: with nobody watching, it allocates and wakes nothing.
                appended = _appended;
                _appended = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                _awaited = false;
            }
        }
        appended?.SetResult();
    }

    /// <summary>The state was replaced by a snapshot at <paramref name="revision"/>: every change at or below it is gone.</summary>
    public void Reset(ulong revision)
    {
        lock (_lock)
        {
            Array.Clear(_ring);
            _written = 0;
            _compactedThrough = revision;
        }
    }

    /// <summary>
    /// Up to <paramref name="max"/> events after <paramref name="position"/> (revision, sequence) that match
    /// <paramref name="filter"/>; null if events after that position are already gone (the caller must start again).
    /// <paramref name="position"/> moves to the last event looked at, matching or not, so that the next call starts there.
    /// <paramref name="changed"/> completes when more events are appended.
    /// </summary>
    public IReadOnlyList<WatchEvent>? After(ref (ulong Revision, int Sequence) position, Func<WatchEvent, bool> filter, int max, out Task changed)
    {
        var (revision, sequence) = position;
        ArgumentNullException.ThrowIfNull(filter);
        lock (_lock)
        {
            changed = _appended.Task;
            _awaited = true;
            if (revision < _compactedThrough)
            {
                return null;
            }
            // The ring is in (revision, sequence) order: find the first event after the position by binary search, so a
            // watcher woken by one write reads only what is new.
            var low = _written - Math.Min(_written, _ring.Length);
            var high = _written;
            while (low < high)
            {
                var middle = low + ((high - low) / 2);
                var change = _ring[(int)(middle % _ring.Length)];
                if (change.Revision < revision || (change.Revision == revision && change.Sequence <= sequence))
                {
                    low = middle + 1;
                }
                else
                {
                    high = middle;
                }
            }
            var events = new List<WatchEvent>();
            for (var i = low; i < _written && events.Count < max; i++)
            {
                var change = _ring[(int)(i % _ring.Length)];
                position = (change.Revision, change.Sequence);
                if (filter(change))
                {
                    events.Add(change);
                }
            }
            return events;
        }
    }
}
