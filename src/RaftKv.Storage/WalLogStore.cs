using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using RaftKv.RaftCore;

namespace RaftKv.Storage;

/// <summary>
/// The Raft log on disk: a segmented, append-only write-ahead log with a CRC32C on every record.
/// <list type="bullet">
/// <item>Group commit: every entry appended between two <see cref="Sync"/> calls goes out in one write, closed by a commit
/// record, followed by one fsync. An entry counts as persisted only after that fsync returned.</item>
/// <item>A conflicting suffix is cut by appending: an entry at an index the log already holds replaces it and everything
/// after it, on replay as in memory. No record is ever overwritten in place.</item>
/// <item>Segments are named <c>{generation}-{first index}.wal</c>. Installing a snapshot starts a new generation, so that
/// old segments can never be mistaken for the log after it.</item>
/// <item>A segment is preallocated (<see cref="StorageOptions.Preallocation"/>): <c>spare.tmp</c> is written with zeros to
/// <see cref="StorageOptions.SegmentBytes"/> and synced, then renamed to the new segment's name, and batches overwrite
/// its zeros in place. Its length on disk is not the log's: the log ends where its records end.</item>
/// <item>Hard state, log base and generation live in the <c>state</c> file (<see cref="LogMeta"/>), replaced atomically,
/// and written only when term, vote or base change: a commit index alone is not worth an fsync.</item>
/// </list>
/// Recovery rules (<see cref="Load"/>): records after the last commit record of the last segment were never acknowledged
/// (their fsync never returned): they are a torn tail, cut off and logged with their offset. Zeros from the end of the last
/// complete batch to the end of a file are space never written (a preallocated segment's), not a tail. A batch written
/// into zeros can tear out of order (a later sector on disk, an earlier one not): a bad record followed by a commit
/// record is still a torn tail when that commit record is the last thing in the file and a sector between them is still
/// all zeros (<see cref="IsTornOverwrite"/>). A bad record anywhere else,
/// or one followed by a complete batch, a gap between entries, or a missing segment stops the node with the file and
/// offset. A failed write or fsync poisons the store: it is never retried as if nothing happened.
/// Not thread-safe: the node loop owns it.
/// </summary>
public sealed partial class WalLogStore : ILogStore, IDisposable
{
    public const string Directory = "wal";

    /// <summary>Bytes of the commit record that closes every batch.</summary>
    public const int CommitRecordBytes = WalFormat.HeaderBytes + WalFormat.CommitPayloadBytes;

    /// <summary>The next segment while it is prepared, zero-filled, before it is renamed to a segment's name.</summary>
    public static readonly string SparePath = System.IO.Path.Combine(Directory, "spare.tmp");

    private static readonly byte[] Zeros = new byte[1 << 20];

    private readonly IFileSystem _files;
    private readonly StorageOptions _options;
    private readonly ILogger _logger;
    private readonly ArrayBufferWriter<byte> _batch = new(64 * 1024);
    private readonly List<Segment> _segments = [];

    // Where each entry (BaseIndex, LastIndex] lives: _locations[i] holds index BaseIndex + 1 + i.
    private readonly ChunkedList<EntryLocation> _locations = new();

    private HardState _hardState;
    private LogMeta _written = LogMeta.Empty;
    private bool _metaDirty;
    private LogIndex _baseIndex;
    private Term _baseTerm;
    private uint _generation = 1;
    private LogIndex _lastIndex;

    private int _batchEntries;
    private LogIndex _batchLast;
    private bool _segmentCreatedInBatch;
    private bool _loaded;
    private string? _failure;

    // Background preallocation: the task that prepares the spare (null: none started, or the last one was taken).
    private Task? _spare;

    public WalLogStore(IFileSystem files, StorageOptions? options = null, ILogger? logger = null)
    {
        _files = files ?? throw new ArgumentNullException(nameof(files));
        _options = options ?? new StorageOptions();
        var problems = _options.Validate().ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentException("invalid storage options: " + string.Join("; ", problems), nameof(options));
        }
        _logger = logger ?? NullLogger.Instance;
    }

    private long _sizeBytes;
    private int _segmentCount;

    /// <summary>Bytes of log records in the segments (safe to read from any thread); preallocated files take more disk.</summary>
    public long SizeBytes => Volatile.Read(ref _sizeBytes);

    /// <summary>Segments on disk (safe to read from any thread).</summary>
    public int SegmentCount => Volatile.Read(ref _segmentCount);

    private void Remeasure()
    {
        Volatile.Write(ref _sizeBytes, _segments.Sum(s => s.Length));
        Volatile.Write(ref _segmentCount, _segments.Count);
    }

    /// <summary>The segments that make up the log, oldest first (paths relative to the store's folder).</summary>
    public IReadOnlyList<string> SegmentPaths => [.. _segments.Select(s => s.Path)];

    /// <summary>Bytes of log records in each segment of <see cref="SegmentPaths"/>: a preallocated segment's file is longer.</summary>
    public IReadOnlyList<long> SegmentLengths => [.. _segments.Select(s => s.Length)];

    /// <summary>The background preparation of the next segment, while one is pending (for tests).</summary>
    internal Task? SparePreparation => _spare;

    /// <summary>Where the last <see cref="Load"/> cut a torn tail (file and offset), or null.</summary>
    public string? RepairedTornTail { get; private set; }

    public PersistentState Load()
    {
        if (_loaded)
        {
            throw new InvalidOperationException("the log is already loaded");
        }
        _loaded = true;
        _files.CreateDirectory(Directory);
        if (_files.Exists(SparePath))
        {
            _files.Delete(SparePath); // prepared by an earlier run, perhaps only in part: it may never have been synced
        }
        var names = _files.List(Directory).Where(n => n.EndsWith(".wal", StringComparison.Ordinal)).ToList();
        var meta = LogMeta.Read(_files);
        if (meta is null)
        {
            if (names.Count > 0)
            {
                throw new StorageException($"{Directory}/ holds {names.Count} segments but the {LogMeta.FileName} file is missing: cannot tell where the log starts");
            }
            // A new log: write its (empty) state file first, so that segments never exist without one.
            meta = LogMeta.Empty;
            try
            {
                meta.Write(_files);
            }
            catch (IOException error)
            {
                throw Fail($"{LogMeta.FileName}: creating the log state file failed: {error.Message}", error);
            }
            _written = meta;
        }
        else
        {
            _written = meta;
        }
        _hardState = meta.HardState;
        _baseIndex = meta.BaseIndex;
        _baseTerm = meta.BaseTerm;
        _generation = meta.Generation;
        _lastIndex = _baseIndex;

        var segments = new List<Segment>();
        foreach (var name in names)
        {
            var segment = Segment.Parse(name) ?? throw new StorageException($"{Directory}/{name}: not a segment name");
            if (segment.Generation != _generation)
            {
                _files.Delete(segment.Path); // from before an installed snapshot
                continue;
            }
            segments.Add(segment);
        }
        segments.Sort((a, b) => a.FirstIndex.CompareTo(b.FirstIndex));

        var entries = new List<LogEntry>();
        for (var i = 0; i < segments.Count; i++)
        {
            // A segment whose successor starts at or below base + 1 holds only compacted entries: skip it unread.
            if (i + 1 < segments.Count && segments[i + 1].FirstIndex.Value <= _baseIndex.Value + 1)
            {
                _files.Delete(segments[i].Path);
                continue;
            }
            ReadSegment(segments[i], isLast: i == segments.Count - 1, entries);
            _segments.Add(segments[i]);
        }

        if (_segments.Count > 0 && _segments[^1].Length == 0)
        {
            // The last segment's first batch was torn away entirely.
            var empty = _segments[^1];
            _segments.RemoveAt(_segments.Count - 1);
            empty.Close();
            _files.Delete(empty.Path);
        }
        foreach (var segment in _segments.Take(_segments.Count - 1))
        {
            segment.Close();
        }

        if (_hardState.Commit > _lastIndex)
        {
            throw new StorageException(
                $"{LogMeta.FileName}: commit index {_hardState.Commit.Value} is beyond the log's last index {_lastIndex.Value}: committed entries are missing from {Directory}/");
        }
        try
        {
            // The names as found are durable from here on: a segment renamed from the spare by a process that died before
            // its directory fsync is replayed now, and a batch that overwrites zeros commits no journal that would carry
            // the name along. Deletions and a cut torn tail too.
            _files.SyncDirectory(Directory);
        }
        catch (IOException error)
        {
            throw Fail($"{Directory}/: syncing the directory after recovery failed: {error.Message}", error);
        }
        Remeasure();
        StartPreparingSpare(); // for the first segment this run starts (only now: a failed Load leaves nothing running)
        return new PersistentState(_hardState, null, _baseIndex, _baseTerm, entries);
    }

    public void Append(IReadOnlyList<LogEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        EnsureUsable();
        if (entries.Count == 0)
        {
            return;
        }
        var first = entries[0].Index;
        Invariant.Assert(first > _baseIndex && first.Value <= _lastIndex.Value + 1, $"append at {first} to a log holding ({_baseIndex}, {_lastIndex}]");
        // Replay reads segments in the order of their first index, so a new segment's first index must pass the active
        // one's: after a cut back to or below it, batches go on in the active segment, however full, until the log passes
        // that index again (at most the length of the cut, uncommitted suffix).
        if (_batch.WrittenCount == 0
            && (_segments.Count == 0 || (_segments[^1].Length >= _options.SegmentBytes && first > _segments[^1].FirstIndex)))
        {
            StartSegment(first);
        }
        var active = _segments[^1];
        for (var i = 0; i < entries.Count; i++) // not foreach: an IReadOnlyList's enumerator is a heap object
        {
            var entry = entries[i];
            if (entry.Data.Length > _options.MaxEntryBytes)
            {
                throw new StorageException($"entry {entry.Index} of {entry.Data.Length} bytes is larger than MaxEntryBytes ({_options.MaxEntryBytes})");
            }
            var offset = active.Length + _batch.WrittenCount;
            WalFormat.WriteEntry(_batch, entry);
            if (entry.Index <= _lastIndex)
            {
                // Replaces a conflicting suffix: on replay the later record wins in the same way.
                _locations.TruncateTo((int)(entry.Index.Value - _baseIndex.Value - 1));
            }
            _locations.Add(new EntryLocation(active, offset));
            _lastIndex = entry.Index;
        }
        _batchEntries += entries.Count;
        _batchLast = _lastIndex;
    }

    public void SetHardState(HardState state)
    {
        EnsureUsable();
        if (state.Term != _hardState.Term || state.Vote != _hardState.Vote)
        {
            _metaDirty = true;
        }
        _hardState = state;
    }

    public void Sync()
    {
        EnsureUsable();
        if (_batch.WrittenCount > 0)
        {
            WalFormat.WriteCommit(_batch, _batchLast, _batchEntries);
            var active = _segments[^1];
            var data = _batch.WrittenSpan;
            try
            {
                active.File!.Write(active.Length, data);
                active.File.Sync();
                if (_segmentCreatedInBatch)
                {
                    _files.SyncDirectory(Directory);
                }
            }
            catch (IOException error)
            {
                throw Fail($"{active.Path}: writing {data.Length} bytes at offset {active.Length} and fsyncing them failed: {error.Message}", error);
            }
            active.Length += data.Length;
            Volatile.Write(ref _sizeBytes, _sizeBytes + data.Length); // only the active segment grew (Remeasure sums them all)
            Volatile.Write(ref _segmentCount, _segments.Count);
            _batch.ResetWrittenCount();
            _batchEntries = 0;
            _segmentCreatedInBatch = false;
        }
        if (_metaDirty)
        {
            WriteMeta();
        }
    }

    public void InstallSnapshot(SnapshotMetadata snapshot)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        EnsureUsable();
        Invariant.Assert(_batch.WrittenCount == 0, "a snapshot is installed before the Ready's entries are appended");
        // A new generation first, durably: from then on the old segments are not part of the log, whatever remains of them.
        _generation++;
        _baseIndex = snapshot.Index;
        _baseTerm = snapshot.Term;
        _lastIndex = snapshot.Index;
        _locations.Clear();
        _hardState = _hardState with { Commit = LogIndex.Max(_hardState.Commit, snapshot.Index) };
        WriteMeta();
        foreach (var segment in _segments)
        {
            segment.Close();
            _files.Delete(segment.Path);
        }
        _segments.Clear();
        Remeasure();
    }

    public void Compact(LogIndex index, Term term)
    {
        EnsureUsable();
        if (index <= _baseIndex)
        {
            return;
        }
        Invariant.Assert(index <= _lastIndex, $"compaction to {index} beyond the last index {_lastIndex}");
        _locations.RemovePrefix((int)(index.Value - _baseIndex.Value));
        _baseIndex = index;
        _baseTerm = term;
        // The new base is durable before any segment goes, so a crash in between never leaves a gap.
        WriteMeta();
        while (_segments.Count > 1 && _segments[1].FirstIndex.Value <= index.Value + 1)
        {
            var segment = _segments[0];
            _segments.RemoveAt(0);
            segment.Close();
            try
            {
                _files.Delete(segment.Path);
            }
            catch (IOException error)
            {
                LogDeleteFailed(segment.Path, error);
            }
        }
        Remeasure();
    }

    /// <summary>Reads an entry back from its segment, checking its checksum (for tests and tools).</summary>
    public LogEntry ReadEntry(LogIndex index)
    {
        EnsureUsable();
        Invariant.Assert(index > _baseIndex && index <= _lastIndex, $"entry {index} outside ({_baseIndex}, {_lastIndex}]");
        Invariant.Assert(_batch.WrittenCount == 0, "read back only synced entries");
        var location = _locations[(int)(index.Value - _baseIndex.Value - 1)];
        using var file = _files.Open(location.Segment.Path, create: false);
        Span<byte> header = stackalloc byte[WalFormat.HeaderBytes];
        file.Read(location.Offset, header);
        if (!WalFormat.TryReadHeader(header, _options.MaxEntryBytes + WalFormat.EntryPrefixBytes, out var length, out var type) || type != RecordType.Entry)
        {
            throw new StorageException($"{location.Segment.Path}: no entry record at offset {location.Offset}");
        }
        var record = new byte[WalFormat.HeaderBytes + length];
        file.Read(location.Offset, record);
        if (!WalFormat.ChecksumMatches(record))
        {
            throw new StorageException($"{location.Segment.Path}: bad checksum at offset {location.Offset}");
        }
        return ParseEntry(record.AsSpan(WalFormat.HeaderBytes));
    }

    public void Dispose()
    {
        if (_loaded && _failure is null && _hardState != _written.HardState)
        {
            try
            {
                WriteMeta(); // a clean shutdown keeps the latest commit index
            }
            catch (StorageException)
            {
                // Already logged by the failure path; nothing more to do while closing.
            }
        }
        foreach (var segment in _segments)
        {
            segment.Close();
        }
        if (_spare is not null)
        {
            Finish(_spare); // a spare half written is deleted by the next Load; only its writes must not outlive the store
        }
    }

    // ---------------------------------------------------------------- recovery

    private void ReadSegment(Segment segment, bool isLast, List<LogEntry> entries)
    {
        var file = _files.Open(segment.Path, create: false);
        segment.File = file;
        var length = file.Length;
        var buffer = ArrayPool<byte>.Shared.Rent((int)Math.Max(length, 1));
        try
        {
            var data = buffer.AsSpan(0, (int)length);
            file.Read(0, data);
            var maxPayload = _options.MaxEntryBytes + WalFormat.EntryPrefixBytes;
            var pending = new List<(LogEntry Entry, long Offset)>();
            long position = 0, lastComplete = 0;
            long badAt = -1;
            var problem = "";
            var sawHeader = false;
            while (position < length)
            {
                var rest = data[(int)position..];
                if (!WalFormat.TryReadHeader(rest, maxPayload, out var payloadLength, out var type))
                {
                    (badAt, problem) = (position, rest.Length < WalFormat.HeaderBytes ? "a short record header" : "an impossible record header");
                    break;
                }
                if (WalFormat.HeaderBytes + payloadLength > rest.Length)
                {
                    (badAt, problem) = (position, $"a record of {payloadLength} bytes running past the end of the file");
                    break;
                }
                var record = rest[..(WalFormat.HeaderBytes + payloadLength)];
                if (!WalFormat.ChecksumMatches(record))
                {
                    (badAt, problem) = (position, "a bad checksum");
                    break;
                }
                var payload = record[WalFormat.HeaderBytes..];
                switch (type)
                {
                    case RecordType.SegmentHeader:
                        CheckSegmentHeader(segment, payload, position);
                        sawHeader = true;
                        break;
                    case RecordType.Entry when sawHeader:
                        pending.Add((ParseEntry(payload), position));
                        break;
                    case RecordType.Commit when sawHeader:
                        CheckCommit(segment, payload, pending, position);
                        foreach (var (entry, offset) in pending)
                        {
                            Replay(segment, entry, offset, entries);
                        }
                        pending.Clear();
                        lastComplete = position + record.Length;
                        break;
                    default:
                        throw new StorageException($"{segment.Path}: a {type} record at offset {position} before the segment header");
                }
                position += record.Length;
            }

            if (badAt >= 0 && pending.Count == 0 && data[(int)badAt..].IndexOfAnyExcept((byte)0) < 0)
            {
                // Zeros to the end of the file after a complete batch: a preallocated segment's space, never written. (In a
                // segment that is not the last too: one preallocated to a larger SegmentBytes, closed when it was lowered.)
                // The log ends with its last complete batch: a segment header whose first batch never landed counts for
                // nothing, so a last segment left with it alone is deleted, as one torn away entirely.
                length = lastComplete;
            }
            else if (badAt >= 0 || pending.Count > 0)
            {
                if (!isLast)
                {
                    var where = badAt >= 0 ? $"{problem} at offset {badAt}" : $"a batch without its commit record at offset {lastComplete}";
                    throw new StorageException($"{segment.Path}: {where}, in a segment that is not the last: the log is damaged");
                }
                if (badAt >= 0 && FindCommitRecord(data, badAt + 1, maxPayload) is { } later && !IsTornOverwrite(data, lastComplete, later))
                {
                    throw new StorageException(
                        $"{segment.Path}: {problem} at offset {badAt}, followed by a complete batch at offset {later}: the log is damaged, not torn");
                }
                // Everything after the last commit record was written by a batch whose fsync never returned: never acknowledged.
                RepairedTornTail = $"{segment.Path} at offset {lastComplete}";
                LogTornTail(segment.Path, lastComplete, length - lastComplete);
                try
                {
                    file.SetLength(lastComplete);
                    file.Sync();
                }
                catch (IOException error)
                {
                    throw Fail($"{segment.Path}: cutting the torn tail at offset {lastComplete} failed: {error.Message}", error);
                }
                length = lastComplete;
            }
            segment.Length = length;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private void Replay(Segment segment, LogEntry entry, long offset, List<LogEntry> entries)
    {
        if (entry.Index <= _baseIndex)
        {
            // Compacted, but when it was written it replaced everything after it, as in Append: any entry replayed so far
            // past the base is older than this one and was cut. (Compaction can reach the replacing entry itself: with
            // SnapshotKeepEntries = 0 the base is the snapshot's index; the simulator found a cut suffix brought back.)
            entries.Clear();
            _locations.TruncateTo(0);
            _lastIndex = _baseIndex;
            return;
        }
        if (entry.Index.Value > _lastIndex.Value + 1)
        {
            throw new StorageException(
                $"{segment.Path}: entry {entry.Index.Value} at offset {offset} follows entry {_lastIndex.Value}: entries are missing (a gap, or a missing segment)");
        }
        if (entry.Index <= _lastIndex)
        {
            var keep = (int)(entry.Index.Value - _baseIndex.Value - 1);
            entries.RemoveRange(keep, entries.Count - keep);
            _locations.TruncateTo(keep);
        }
        entries.Add(entry);
        _locations.Add(new EntryLocation(segment, offset));
        _lastIndex = entry.Index;
    }

    private static void CheckSegmentHeader(Segment segment, ReadOnlySpan<byte> payload, long position)
    {
        if (position != 0 || payload.Length != WalFormat.SegmentHeaderPayloadBytes || !payload[..8].SequenceEqual(WalFormat.SegmentMagic)
            || BinaryPrimitives.ReadUInt32LittleEndian(payload[8..]) != segment.Generation
            || BinaryPrimitives.ReadUInt64LittleEndian(payload[12..]) != segment.FirstIndex.Value)
        {
            throw new StorageException($"{segment.Path}: the segment header at offset {position} does not match the file's name");
        }
    }

    private static void CheckCommit(Segment segment, ReadOnlySpan<byte> payload, List<(LogEntry Entry, long Offset)> pending, long position)
    {
        var lastIndex = BinaryPrimitives.ReadUInt64LittleEndian(payload[8..]);
        var count = BinaryPrimitives.ReadUInt32LittleEndian(payload[16..]);
        if (payload.Length != WalFormat.CommitPayloadBytes || !payload[..8].SequenceEqual(WalFormat.CommitMagic)
            || count != pending.Count || (pending.Count > 0 && pending[^1].Entry.Index.Value != lastIndex))
        {
            throw new StorageException($"{segment.Path}: the commit record at offset {position} does not match the {pending.Count} entries before it");
        }
    }

    /// <summary>Bytes of the sector, the unit a disk writes whole or not at all: the smallest there is.</summary>
    private const int SectorBytes = 512;

    /// <summary>
    /// Whether the commit record at <paramref name="commitAt"/>, found after a bad record, closes a batch torn on its way
    /// into a preallocated segment's zeros: a disk writes the sectors of one write in any order, so the sector with the
    /// commit record can land while an earlier one does not, and that one still holds what it held, the zeros (and the end
    /// of the batch before). Torn if the commit record is the last thing in the file (zeros only after it) and some sector
    /// between the last complete batch and it holds, from the batch's start on, only zeros. Damage to the very last batch
    /// that zeroes a sector looks the same (the limit in docs/architecture.md, "Recovery").
    /// </summary>
    private static bool IsTornOverwrite(ReadOnlySpan<byte> data, long lastComplete, long commitAt)
    {
        var commitEnd = commitAt + CommitRecordBytes;
        if (commitEnd > data.Length || data[(int)commitEnd..].IndexOfAnyExcept((byte)0) >= 0)
        {
            return false;
        }
        for (var sector = lastComplete / SectorBytes * SectorBytes; sector + SectorBytes <= commitAt; sector += SectorBytes)
        {
            // At least a record header's worth: no record starts with 12 zero bytes (its length is never 0).
            var from = Math.Max(sector, lastComplete);
            if (sector + SectorBytes - from >= WalFormat.HeaderBytes && data[(int)from..(int)(sector + SectorBytes)].IndexOfAnyExcept((byte)0) < 0)
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>The offset of a valid commit record at or after <paramref name="from"/>, or null.</summary>
    private static long? FindCommitRecord(ReadOnlySpan<byte> data, long from, int maxPayload)
    {
        var searchFrom = (int)from;
        while (searchFrom < data.Length)
        {
            var found = data[searchFrom..].IndexOf(WalFormat.CommitMagic);
            if (found < 0)
            {
                return null;
            }
            var start = searchFrom + found - WalFormat.HeaderBytes;
            if (start >= 0 && WalFormat.TryReadHeader(data[start..], maxPayload, out var length, out var type)
                && type == RecordType.Commit && start + WalFormat.HeaderBytes + length <= data.Length
                && WalFormat.ChecksumMatches(data.Slice(start, WalFormat.HeaderBytes + length)))
            {
                return start;
            }
            searchFrom += found + 1;
        }
        return null;
    }

    private static LogEntry ParseEntry(ReadOnlySpan<byte> payload) =>
        new(new LogIndex(BinaryPrimitives.ReadUInt64LittleEndian(payload)),
            new Term(BinaryPrimitives.ReadUInt64LittleEndian(payload[8..])),
            (EntryKind)payload[16],
            payload[WalFormat.EntryPrefixBytes..].ToArray());

    // ---------------------------------------------------------------- writing

    private void StartSegment(LogIndex first)
    {
        if (_segments.Count > 0)
        {
            _segments[^1].Close();
        }
        var segment = new Segment(_generation, first);
        try
        {
            // The spare's zeros are synced; its new name becomes durable with the directory's fsync after the first batch.
            var preallocated = TakeSpare();
            if (preallocated)
            {
                _files.Rename(SparePath, segment.Path);
            }
            segment.File = _files.Open(segment.Path, create: true);
            if (!preallocated)
            {
                segment.File.SetLength(0);
            }
        }
        catch (IOException error)
        {
            throw Fail($"{segment.Path}: creating the segment failed: {error.Message}", error);
        }
        _segments.Add(segment);
        WalFormat.WriteSegmentHeader(_batch, _generation, first);
        _segmentCreatedInBatch = true;
        StartPreparingSpare();
    }

    private void StartPreparingSpare()
    {
        if (_options.Preallocation == SegmentPreallocation.Background && _spare is null)
        {
            var size = _options.SegmentBytes;
            var files = _files;
            _spare = Task.Run(() => PrepareSpare(files, size));
        }
    }

    /// <summary>Whether a prepared spare is there to be renamed (preparing it now when <see cref="SegmentPreallocation.Inline"/>).</summary>
    private bool TakeSpare()
    {
        switch (_options.Preallocation)
        {
            case SegmentPreallocation.Inline:
                PrepareSpare(_files, _options.SegmentBytes);
                return true;
            case SegmentPreallocation.Background when _spare is not null && (_spare.IsCompleted || _segments.Count == 0):
                // A log without segments (a new one, or one that just installed a snapshot) waits for its spare: it starts
                // once, and a first segment that grows would be the one that every batch of a short-lived cluster pays for.
                var done = _spare;
                _spare = null;
                if (Finish(done))
                {
                    return true;
                }
                // Not the log's data: the segment grows instead, and the next one is tried again. A disk that fails for
                // good fails the log's own next write, which poisons the store.
                LogSpareFailed(SparePath, done.Exception?.GetBaseException());
                return false;
            case SegmentPreallocation.Background:
                if (_spare is not null)
                {
                    LogSpareNotReady(SparePath);
                }
                return false;
            default:
                return false;
        }
    }

    /// <summary>Waits for a spare's preparation; whether it succeeded (a failure is the caller's to log, or not).</summary>
    private static bool Finish(Task preparation)
    {
        try
        {
            preparation.Wait();
        }
        catch (AggregateException)
        {
            // A spare is never part of the log: its failure is only reported.
        }
        return preparation.IsCompletedSuccessfully;
    }

    /// <summary>Writes <see cref="SparePath"/> with zeros to <paramref name="size"/> bytes and syncs it.</summary>
    private static void PrepareSpare(IFileSystem files, long size)
    {
        using var file = files.Open(SparePath, create: true);
        file.SetLength(0);
        for (long offset = 0; offset < size; offset += Zeros.Length)
        {
            file.Write(offset, Zeros.AsSpan(0, (int)Math.Min(Zeros.Length, size - offset)));
        }
        file.Sync();
    }

    private void WriteMeta()
    {
        var meta = new LogMeta(_hardState, _baseIndex, _baseTerm, _generation);
        try
        {
            meta.Write(_files);
        }
        catch (IOException error)
        {
            throw Fail($"{LogMeta.FileName}: replacing the log state file failed: {error.Message}", error);
        }
        _written = meta;
        _metaDirty = false;
    }

    private StorageException Fail(string message, Exception error)
    {
        _failure = message;
        LogFailed(message, error);
        return new StorageException(message, error);
    }

    private void EnsureUsable()
    {
        if (_failure is not null)
        {
            throw new StorageException("the log is unusable after an earlier failure: " + _failure);
        }
        if (!_loaded)
        {
            throw new InvalidOperationException("load the log before writing to it");
        }
    }

    [LoggerMessage(EventId = 101, Level = LogLevel.Warning, Message = "{Path}: cut a torn tail at offset {Offset} ({Bytes} bytes after the last complete batch, never acknowledged)")]
    private partial void LogTornTail(string path, long offset, long bytes);

    [LoggerMessage(EventId = 102, Level = LogLevel.Critical, Message = "write-ahead log failed: {Message}")]
    private partial void LogFailed(string message, Exception error);

    [LoggerMessage(EventId = 103, Level = LogLevel.Warning, Message = "{Path}: could not delete a compacted segment")]
    private partial void LogDeleteFailed(string path, Exception error);

    [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "{Path}: preparing the next segment failed; it starts empty and grows instead")]
    private partial void LogSpareFailed(string path, Exception? error);

    [LoggerMessage(EventId = 105, Level = LogLevel.Information, Message = "{Path}: the next segment was not ready yet; it starts empty and grows instead")]
    private partial void LogSpareNotReady(string path);

    private readonly record struct EntryLocation(Segment Segment, long Offset);

    private sealed class Segment(uint generation, LogIndex firstIndex)
    {
        public uint Generation { get; } = generation;

        public LogIndex FirstIndex { get; } = firstIndex;

        public string Path { get; } = System.IO.Path.Combine(Directory,
            generation.ToString("D8", CultureInfo.InvariantCulture) + "-" + firstIndex.Value.ToString("D20", CultureInfo.InvariantCulture) + ".wal");

        public IStorageFile? File { get; set; }

        public long Length { get; set; }

        public void Close()
        {
            File?.Dispose();
            File = null;
        }

        public static Segment? Parse(string name)
        {
            var dash = name.IndexOf('-', StringComparison.Ordinal);
            if (dash != 8 || !name.EndsWith(".wal", StringComparison.Ordinal)
                || !uint.TryParse(name.AsSpan(0, 8), NumberStyles.None, CultureInfo.InvariantCulture, out var generation)
                || !ulong.TryParse(name.AsSpan(9, name.Length - 9 - 4), NumberStyles.None, CultureInfo.InvariantCulture, out var first))
            {
                return null;
            }
            return new Segment(generation, new LogIndex(first));
        }
    }
}
