using System.Globalization;
using System.Text;

namespace RaftKv.RaftCore;

/// <summary>
/// A message between two nodes. Every message carries the sender's term (Raft §5.1). The transcript form
/// printed by <c>ToString()</c> is what scenario tests compare, so keep it on one line and stable.
/// </summary>
public abstract record Message(NodeId From, NodeId To, Term Term)
{
    protected string Head(string kind) => $"{From}->{To} {kind} t{Term.Value}";

    protected static string N(ulong value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>RequestVote (Raft §5.2), or with <see cref="PreVote"/> the PreVote probe (dissertation §9.6) that changes no state.</summary>
/// <see cref="Transfer"/> marks a campaign started by leadership transfer, which voters must not refuse for leader stickiness.
public sealed record RequestVote(NodeId From, NodeId To, Term Term, LogIndex LastLogIndex, Term LastLogTerm, bool PreVote, bool Transfer = false)
    : Message(From, To, Term)
{
    public override string ToString() =>
        Head(PreVote ? "PreVote" : "RequestVote") + $" last={N(LastLogIndex.Value)}/{N(LastLogTerm.Value)}" + (Transfer ? " transfer" : "");
}

public sealed record RequestVoteResponse(NodeId From, NodeId To, Term Term, bool Granted, bool PreVote)
    : Message(From, To, Term)
{
    public override string ToString() => Head(PreVote ? "PreVoteResponse" : "RequestVoteResponse") + (Granted ? " granted" : " refused");
}

/// <summary>AppendEntries (Raft §5.3): entries after (PrevLogIndex, PrevLogTerm), and the leader's commit index.</summary>
public sealed record AppendEntries(NodeId From, NodeId To, Term Term, LogIndex PrevLogIndex, Term PrevLogTerm, IReadOnlyList<LogEntry> Entries, LogIndex LeaderCommit)
    : Message(From, To, Term)
{
    public override string ToString()
    {
        var text = new StringBuilder(Head("AppendEntries"))
            .Append(" prev=").Append(N(PrevLogIndex.Value)).Append('/').Append(N(PrevLogTerm.Value))
            .Append(" commit=").Append(N(LeaderCommit.Value));
        if (Entries.Count > 0)
        {
            text.Append(" entries=[").AppendJoin(", ", Entries).Append(']');
        }
        return text.ToString();
    }
}

/// <summary>
/// The answer to AppendEntries or InstallSnapshot. On success <see cref="MatchIndex"/> is the last index now known to
/// match the leader. On a refusal <see cref="MatchIndex"/> echoes the refused PrevLogIndex and the hint lets the leader
/// skip a whole term at a time: <see cref="HintTerm"/> is the follower's term at that index (zero if its log is shorter)
/// and <see cref="HintIndex"/> the first index it holds of that term (or its last index + 1).
/// </summary>
public sealed record AppendEntriesResponse(NodeId From, NodeId To, Term Term, bool Success, LogIndex MatchIndex, LogIndex HintIndex, Term HintTerm)
    : Message(From, To, Term)
{
    public override string ToString() => Success
        ? Head("AppendEntriesResponse") + " ok match=" + N(MatchIndex.Value)
        : Head("AppendEntriesResponse") + $" refused prev={N(MatchIndex.Value)} hint={N(HintIndex.Value)}/{N(HintTerm.Value)}";
}

/// <summary>
/// A leader's heartbeat. <see cref="Commit"/> is never beyond what the follower is known to match.
/// <see cref="ReadRound"/> names the newest ReadIndex round this heartbeat can confirm (0: none).
/// </summary>
public sealed record Heartbeat(NodeId From, NodeId To, Term Term, LogIndex Commit, ulong ReadRound)
    : Message(From, To, Term)
{
    public override string ToString() => Head("Heartbeat") + " commit=" + N(Commit.Value) + (ReadRound > 0 ? " read=" + N(ReadRound) : "");
}

public sealed record HeartbeatResponse(NodeId From, NodeId To, Term Term, ulong ReadRound)
    : Message(From, To, Term)
{
    public override string ToString() => Head("HeartbeatResponse") + (ReadRound > 0 ? " read=" + N(ReadRound) : "");
}

/// <summary>
/// InstallSnapshot (Raft §7). The core only names the snapshot; the snapshot's bytes travel beside the message
/// (the transport streams them in chunks from the sender's snapshot store into the receiver's).
/// </summary>
public sealed record InstallSnapshot(NodeId From, NodeId To, Term Term, SnapshotMetadata Snapshot)
    : Message(From, To, Term)
{
    public override string ToString() => Head("InstallSnapshot") + $" {N(Snapshot.Index.Value)}/{N(Snapshot.Term.Value)}";
}

/// <summary>Leadership transfer (dissertation §3.10): the leader tells a caught-up follower to campaign at once.</summary>
public sealed record TimeoutNow(NodeId From, NodeId To, Term Term)
    : Message(From, To, Term)
{
    public override string ToString() => Head("TimeoutNow");
}
