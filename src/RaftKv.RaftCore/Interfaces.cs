namespace RaftKv.RaftCore;

/// <summary>
/// Durable storage of the log and hard state, driven by the node loop from each <see cref="Ready"/>. Writes may be buffered
/// until <see cref="Sync"/>; only what <see cref="Sync"/> returned from is durable. A failed write or sync throws
/// <see cref="StorageException"/> and must never be retried as if nothing happened.
/// </summary>
public interface ILogStore
{
    /// <summary>Reads what survived on disk (recovering a torn tail); throws <see cref="StorageException"/> for anything it cannot vouch for.</summary>
    PersistentState Load();

    /// <summary>Appends entries, first cutting off any stored entries at or after the first one's index.</summary>
    void Append(IReadOnlyList<LogEntry> entries);

    void SetHardState(HardState state);

    /// <summary>Makes every earlier write durable (fsync).</summary>
    void Sync();

    /// <summary>Replaces the whole log with the base of an installed snapshot (its bytes are already in the snapshot store).</summary>
    void InstallSnapshot(SnapshotMetadata snapshot);

    /// <summary>Entries through <paramref name="index"/> are covered by a durable snapshot and may be dropped.</summary>
    void Compact(LogIndex index, Term term);
}

/// <summary>Snapshot files: written by the state machine as a stream, read back for restore or to send to a follower.</summary>
public interface ISnapshotStore
{
    /// <summary>Starts a new snapshot; it becomes visible only when the returned writer is committed.</summary>
    ISnapshotWriter Create(SnapshotMetadata metadata);

    /// <summary>Opens a complete snapshot for reading; throws <see cref="StorageException"/> if it is missing or damaged.</summary>
    Stream OpenRead(SnapshotMetadata metadata);

    /// <summary>The newest complete snapshot, or null.</summary>
    SnapshotMetadata? Latest { get; }
}

public interface ISnapshotWriter : IDisposable
{
    Stream Stream { get; }

    /// <summary>Flushes, fsyncs and publishes the snapshot; older ones beyond the retention count go.</summary>
    void Commit();
}

/// <summary>Sends messages to peers without blocking: a full or broken link drops them (Raft tolerates loss).</summary>
public interface ITransport
{
    void Send(Message message);
}

/// <summary>
/// The replicated state machine. Apply is deterministic: the same entries in the same order give the same state and
/// results on every node (no clock, no randomness, no I/O but snapshot streams).
/// </summary>
public interface IStateMachine
{
    /// <summary>
    /// Applies a committed command. The answer goes back, as bytes the application alone interprets, to the client that
    /// proposed it, on whichever node that client asked. A malformed command must get an answer, never an exception.
    /// </summary>
    ReadOnlyMemory<byte> Apply(LogEntry entry);

    /// <summary>
    /// Answers a read against the applied state (called on the loop, after a ReadIndex confirmed it is fresh enough), as
    /// bytes the application interprets. A malformed query must get an answer, never an exception.
    /// </summary>
    ReadOnlyMemory<byte> Query(ReadOnlyMemory<byte> query);

    /// <summary>Captures the applied state cheaply on the loop; the capture is written out on another thread while applies go on.</summary>
    IStateMachineSnapshot CaptureSnapshot();

    /// <summary>Replaces the whole state with a snapshot's.</summary>
    void Restore(Stream snapshot);
}

/// <summary>
/// A state machine that can sum up its whole applied state in one number, equal on every node that applied the same log:
/// operators and fault tests compare nodes with it. Safe to call from any thread.
/// </summary>
public interface IStateDigest
{
    (ulong Digest, LogIndex Index) Digest();
}

/// <summary>Settings of one component, bound from one configuration section. Each problem names its field.</summary>
public interface IValidatedOptions
{
    IEnumerable<string> Validate();
}

public interface IStateMachineSnapshot
{
    void WriteTo(Stream destination);
}

/// <summary>A storage operation failed (I/O error, no space, damaged data). The node must stop writing; it names file and offset.</summary>
public sealed class StorageException : Exception
{
    public StorageException(string message) : base(message)
    {
    }

    public StorageException(string message, Exception innerException) : base(message, innerException)
    {
    }

    public StorageException()
    {
    }
}
