using Google.Protobuf;
using RaftKv.RaftCore;
using Proto = RaftKv.Transport.Protos;

namespace RaftKv.Transport;

/// <summary>Maps the core's message records to protobuf and back: the only place that knows both.</summary>
internal static class MessageMapper
{
    public static Proto.PeerMessage ToProto(Message message)
    {
        var proto = new Proto.PeerMessage { From = message.From.Value, To = message.To.Value, Term = message.Term.Value };
        switch (message)
        {
            case RequestVote vote:
                proto.RequestVote = new Proto.RequestVote
                {
                    LastLogIndex = vote.LastLogIndex.Value,
                    LastLogTerm = vote.LastLogTerm.Value,
                    PreVote = vote.PreVote,
                    Transfer = vote.Transfer,
                };
                break;
            case RequestVoteResponse response:
                proto.RequestVoteResponse = new Proto.RequestVoteResponse { Granted = response.Granted, PreVote = response.PreVote };
                break;
            case AppendEntries append:
                var body = new Proto.AppendEntries
                {
                    PrevLogIndex = append.PrevLogIndex.Value,
                    PrevLogTerm = append.PrevLogTerm.Value,
                    LeaderCommit = append.LeaderCommit.Value,
                };
                // Indexed, not foreach: an IReadOnlyList's enumerator is a heap object, and this runs for every append.
                for (var i = 0; i < append.Entries.Count; i++)
                {
                    var entry = append.Entries[i];
                    body.Entries.Add(new Proto.Entry
                    {
                        Index = entry.Index.Value,
                        Term = entry.Term.Value,
                        Kind = (uint)entry.Kind,
                        // Entries are immutable once appended: no copy.
                        Data = UnsafeByteOperations.UnsafeWrap(entry.Data),
                    });
                }
                proto.AppendEntries = body;
                break;
            case AppendEntriesResponse response:
                proto.AppendEntriesResponse = new Proto.AppendEntriesResponse
                {
                    Success = response.Success,
                    MatchIndex = response.MatchIndex.Value,
                    HintIndex = response.HintIndex.Value,
                    HintTerm = response.HintTerm.Value,
                };
                break;
            case Heartbeat heartbeat:
                proto.Heartbeat = new Proto.Heartbeat { Commit = heartbeat.Commit.Value, ReadRound = heartbeat.ReadRound };
                break;
            case HeartbeatResponse response:
                proto.HeartbeatResponse = new Proto.HeartbeatResponse { ReadRound = response.ReadRound };
                break;
            case TimeoutNow:
                proto.TimeoutNow = new Proto.TimeoutNow();
                break;
            case InstallSnapshot install:
                proto.InstallSnapshot = new Proto.InstallSnapshot { Snapshot = ToProto(install.Snapshot) };
                break;
            default:
                throw new ArgumentException($"no wire form for {message.GetType().Name}", nameof(message));
        }
        return proto;
    }

    /// <summary>Maps a received message; throws <see cref="FormatException"/> for one that cannot be a Raft message.</summary>
    public static Message FromProto(Proto.PeerMessage proto)
    {
        var from = new NodeId(proto.From);
        var to = new NodeId(proto.To);
        var term = new Term(proto.Term);
        return proto.BodyCase switch
        {
            Proto.PeerMessage.BodyOneofCase.RequestVote => new RequestVote(from, to, term,
                new LogIndex(proto.RequestVote.LastLogIndex), new Term(proto.RequestVote.LastLogTerm), proto.RequestVote.PreVote, proto.RequestVote.Transfer),
            Proto.PeerMessage.BodyOneofCase.RequestVoteResponse => new RequestVoteResponse(from, to, term,
                proto.RequestVoteResponse.Granted, proto.RequestVoteResponse.PreVote),
            Proto.PeerMessage.BodyOneofCase.AppendEntries => new AppendEntries(from, to, term,
                new LogIndex(proto.AppendEntries.PrevLogIndex), new Term(proto.AppendEntries.PrevLogTerm),
                [.. proto.AppendEntries.Entries.Select(FromProto)], new LogIndex(proto.AppendEntries.LeaderCommit)),
            Proto.PeerMessage.BodyOneofCase.AppendEntriesResponse => new AppendEntriesResponse(from, to, term,
                proto.AppendEntriesResponse.Success, new LogIndex(proto.AppendEntriesResponse.MatchIndex),
                new LogIndex(proto.AppendEntriesResponse.HintIndex), new Term(proto.AppendEntriesResponse.HintTerm)),
            Proto.PeerMessage.BodyOneofCase.Heartbeat => new Heartbeat(from, to, term, new LogIndex(proto.Heartbeat.Commit), proto.Heartbeat.ReadRound),
            Proto.PeerMessage.BodyOneofCase.HeartbeatResponse => new HeartbeatResponse(from, to, term, proto.HeartbeatResponse.ReadRound),
            Proto.PeerMessage.BodyOneofCase.TimeoutNow => new TimeoutNow(from, to, term),
            Proto.PeerMessage.BodyOneofCase.InstallSnapshot => new InstallSnapshot(from, to, term, FromProto(proto.InstallSnapshot.Snapshot)),
            _ => throw new FormatException("a peer message without a body"),
        };
    }

    public static Proto.SnapshotMetadata ToProto(SnapshotMetadata snapshot) => new()
    {
        Index = snapshot.Index.Value,
        Term = snapshot.Term.Value,
        Config = ByteString.CopyFrom(snapshot.Config.Encode()),
    };

    public static SnapshotMetadata FromProto(Proto.SnapshotMetadata? snapshot) =>
        snapshot is null
            ? throw new FormatException("InstallSnapshot without snapshot metadata")
            : new SnapshotMetadata(new LogIndex(snapshot.Index), new Term(snapshot.Term), ClusterConfig.Decode(snapshot.Config.Span));

    private static LogEntry FromProto(Proto.Entry entry) =>
        entry.Kind > (uint)EntryKind.Config
            ? throw new FormatException($"unknown entry kind {entry.Kind}")
            : new LogEntry(new LogIndex(entry.Index), new Term(entry.Term), (EntryKind)entry.Kind, entry.Data.Memory);

    public static Proto.ForwardReply ToProto(NodeAnswer answer) => new()
    {
        Status = answer.Status switch
        {
            AnswerStatus.Ok => Proto.AnswerStatus.Ok,
            AnswerStatus.NoLeader => Proto.AnswerStatus.NoLeader,
            AnswerStatus.Unavailable => Proto.AnswerStatus.Unavailable,
            AnswerStatus.Lost => Proto.AnswerStatus.Lost,
            AnswerStatus.Unknown => Proto.AnswerStatus.Unknown,
            AnswerStatus.TimedOut => Proto.AnswerStatus.TimedOut,
            AnswerStatus.TooLarge => Proto.AnswerStatus.TooLarge,
            AnswerStatus.Conflict => Proto.AnswerStatus.Conflict,
            AnswerStatus.Invalid => Proto.AnswerStatus.Invalid,
            _ => throw new ArgumentOutOfRangeException(nameof(answer), answer.Status, "no wire form"),
        },
        Result = Google.Protobuf.UnsafeByteOperations.UnsafeWrap(answer.Result), // made for this answer alone
        Index = answer.Index.Value,
        Term = answer.Term.Value,
        Leader = answer.Leader.Value,
        Reason = answer.Reason ?? "",
    };

    /// <summary>A reply from another node; a status this node does not know makes the outcome unknown.</summary>
    public static NodeAnswer FromProto(Proto.ForwardReply reply) => new(
        reply.Status switch
        {
            Proto.AnswerStatus.Ok => AnswerStatus.Ok,
            Proto.AnswerStatus.NoLeader => AnswerStatus.NoLeader,
            Proto.AnswerStatus.Unavailable => AnswerStatus.Unavailable,
            Proto.AnswerStatus.Lost => AnswerStatus.Lost,
            Proto.AnswerStatus.TimedOut => AnswerStatus.TimedOut,
            Proto.AnswerStatus.TooLarge => AnswerStatus.TooLarge,
            Proto.AnswerStatus.Conflict => AnswerStatus.Conflict,
            Proto.AnswerStatus.Invalid => AnswerStatus.Invalid,
            _ => AnswerStatus.Unknown,
        },
        reply.Result.Memory,
        new LogIndex(reply.Index),
        new Term(reply.Term),
        new NodeId(reply.Leader),
        reply.Reason.Length == 0 ? null : reply.Reason);

    public static Proto.ForwardKind ToProto(ForwardKind kind) => kind switch
    {
        ForwardKind.Write => Proto.ForwardKind.Write,
        ForwardKind.LinearizableRead => Proto.ForwardKind.LinearizableRead,
        ForwardKind.ConfChange => Proto.ForwardKind.ConfChange,
        ForwardKind.TransferLeadership => Proto.ForwardKind.TransferLeadership,
        ForwardKind.LeaderRequest => Proto.ForwardKind.LeaderRequest,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "no wire form"),
    };

    /// <summary>A forwarded request's kind; null for one this node does not know (it is refused, never guessed).</summary>
    public static ForwardKind? FromProto(Proto.ForwardKind kind) => kind switch
    {
        Proto.ForwardKind.Write => ForwardKind.Write,
        Proto.ForwardKind.LinearizableRead => ForwardKind.LinearizableRead,
        Proto.ForwardKind.ConfChange => ForwardKind.ConfChange,
        Proto.ForwardKind.TransferLeadership => ForwardKind.TransferLeadership,
        Proto.ForwardKind.LeaderRequest => ForwardKind.LeaderRequest,
        _ => null,
    };

    /// <summary>Bytes a message adds to a batch, without serializing it (for batch bounds).</summary>
    public static int EstimateBytes(Message message)
    {
        var bytes = 64;
        if (message is AppendEntries append)
        {
            for (var i = 0; i < append.Entries.Count; i++)
            {
                bytes += append.Entries[i].SizeBytes;
            }
        }
        return bytes;
    }
}
