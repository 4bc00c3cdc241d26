using Google.Protobuf;
using RaftKv.RaftCore;

namespace RaftKv.Transport.Tests;

public sealed class MessageMapperTests
{
    private static readonly NodeId A = new(1), B = new(2);
    private static readonly Term T = new(7);

    public static TheoryData<Message> Messages => new()
    {
        new RequestVote(A, B, T, new LogIndex(10), new Term(6), PreVote: true, Transfer: false),
        new RequestVote(A, B, T, new LogIndex(10), new Term(6), PreVote: false, Transfer: true),
        new RequestVoteResponse(B, A, T, Granted: true, PreVote: false),
        new AppendEntries(A, B, T, new LogIndex(4), new Term(5), [
            new LogEntry(new LogIndex(5), T, EntryKind.Normal, new byte[] { 1, 2, 3 }),
            new LogEntry(new LogIndex(6), T, EntryKind.Config, ClusterConfig.Create([A, B]).Encode()),
            LogEntry.Noop(new LogIndex(7), T),
        ], new LogIndex(3)),
        new AppendEntriesResponse(B, A, T, false, new LogIndex(9), new LogIndex(4), new Term(3)),
        new Heartbeat(A, B, T, new LogIndex(8), 42),
        new HeartbeatResponse(B, A, T, 42),
        new TimeoutNow(A, B, T),
        new InstallSnapshot(A, B, T, new SnapshotMetadata(new LogIndex(100), new Term(6), ClusterConfig.Create([A, B], learners: [new NodeId(3)]))),
    };

    [Theory]
    [MemberData(nameof(Messages))]
    public void Every_message_survives_the_wire(Message message)
    {
        var wire = MessageMapper.ToProto(message);
        var bytes = Google.Protobuf.MessageExtensions.ToByteArray(wire);

        var back = MessageMapper.FromProto(Protos.PeerMessage.Parser.ParseFrom(bytes));

        back.ToString().Should().Be(message.ToString());
        if (message is AppendEntries append)
        {
            var entries = ((AppendEntries)back).Entries;
            entries.Select(e => (e.Index, e.Term, e.Kind, e.Data.ToArray())).Should().BeEquivalentTo(
                append.Entries.Select(e => (e.Index, e.Term, e.Kind, e.Data.ToArray())), o => o.WithStrictOrdering());
        }
        if (message is InstallSnapshot install)
        {
            ((InstallSnapshot)back).Snapshot.Should().Be(install.Snapshot);
        }
    }

    [Fact]
    public void A_message_without_a_body_or_with_an_unknown_entry_kind_is_refused()
    {
        var empty = () => MessageMapper.FromProto(new Protos.PeerMessage { From = 1, To = 2, Term = 3 });
        var wire = MessageMapper.ToProto(new AppendEntries(A, B, T, LogIndex.Zero, Term.Zero, [LogEntry.Noop(new LogIndex(1), T)], LogIndex.Zero));
        wire.AppendEntries.Entries[0].Kind = 9;
        var unknownKind = () => MessageMapper.FromProto(wire);

        empty.Should().Throw<FormatException>();
        unknownKind.Should().Throw<FormatException>();
    }

    [Theory]
    [InlineData(AnswerStatus.Ok, "result bytes", null)]
    [InlineData(AnswerStatus.NoLeader, "", "the leader changed while the request was forwarded")]
    [InlineData(AnswerStatus.Unavailable, "", "storage failed")]
    [InlineData(AnswerStatus.Lost, "", "another entry was committed at its index")]
    [InlineData(AnswerStatus.Unknown, "", "stopped")]
    [InlineData(AnswerStatus.TimedOut, "", "no answer in time")]
    [InlineData(AnswerStatus.TooLarge, "", "a command of 20000000 bytes")]
    public void A_forwarded_answer_crosses_the_wire_unread(AnswerStatus status, string result, string? reason)
    {
        var answer = new NodeAnswer(status, System.Text.Encoding.UTF8.GetBytes(result), new LogIndex(12), new Term(3), new NodeId(2), reason);

        var back = MessageMapper.FromProto(Protos.ForwardReply.Parser.ParseFrom(MessageMapper.ToProto(answer).ToByteArray()));

        back.Should().BeEquivalentTo(answer with { Result = default }, o => o.Excluding(a => a.Result));
        back.Result.ToArray().Should().Equal(answer.Result.ToArray());
    }

    [Theory]
    [InlineData(99)]
    [InlineData(0)]
    public void A_reply_whose_status_this_node_does_not_know_or_that_names_none_makes_the_outcome_unknown(int status)
    {
        var reply = new Protos.ForwardReply { Status = (Protos.AnswerStatus)status, Result = Google.Protobuf.ByteString.CopyFromUtf8("x") };

        MessageMapper.FromProto(reply).Status.Should().Be(AnswerStatus.Unknown, "an empty or foreign reply is never a success");
    }
}
