using System.Diagnostics;
using System.Globalization;
using Google.Protobuf;
using RaftKv.RaftCore;
using Xunit.Abstractions;
using Proto = RaftKv.Transport.Protos;

namespace RaftKv.Transport.Tests;

/// <summary>
/// Hostile peer frames: random bytes, and valid messages of every kind with bytes flipped, cut, inserted or repeated,
/// decoded as the peer service decodes them. A frame is either a message, or refused with
/// <see cref="InvalidProtocolBufferException"/> (not protobuf) or <see cref="FormatException"/> (not a message the core
/// takes); nothing else may happen: no other exception, no crash, no unbounded allocation. CI runs
/// RAFTKV_FUZZ_CASES (default 200,000) seeded cases; set it higher (and RAFTKV_FUZZ_SEED) for a long run by hand.
/// </summary>
public sealed class PeerDecoderFuzzTests(ITestOutputHelper output)
{
    private static readonly int Cases = int.TryParse(Environment.GetEnvironmentVariable("RAFTKV_FUZZ_CASES"), CultureInfo.InvariantCulture, out var n) ? n : 200_000;
    private static readonly int Seed = int.TryParse(Environment.GetEnvironmentVariable("RAFTKV_FUZZ_SEED"), CultureInfo.InvariantCulture, out var s) ? s : 1;

    [Fact]
    public void Mutated_and_random_peer_frames_decode_to_a_message_or_are_refused_cleanly()
    {
        var random = new Random(Seed);
        var seeds = ValidFrames();
        int decoded = 0, notProtobuf = 0, refused = 0;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < Cases; i++)
        {
            var frame = i % 10 == 0 ? RandomBytes(random) : Mutate(random, seeds[random.Next(seeds.Count)]);
            Proto.PeerMessage proto;
            try
            {
                proto = Proto.PeerMessage.Parser.ParseFrom(frame);
            }
            catch (InvalidProtocolBufferException)
            {
                notProtobuf++;
                continue;
            }
            try
            {
                _ = MessageMapper.FromProto(proto);
                decoded++;
            }
            catch (FormatException)
            {
                refused++;
            }
            catch (Exception error)
            {
                throw new Xunit.Sdk.XunitException($"case {i} (seed {Seed}): {error.GetType().Name}: {error.Message}\nframe: {Convert.ToHexString(frame)}");
            }
        }
        output.WriteLine($"{Cases:N0} cases in {clock.Elapsed.TotalSeconds:F2} s (seed {Seed}): {decoded:N0} decoded, {refused:N0} refused as no message, {notProtobuf:N0} not protobuf");
        decoded.Should().BeGreaterThan(0, "the mutations keep some frames valid, so the decoder's own checks are reached");
        refused.Should().BeGreaterThan(0);
    }

    private static List<byte[]> ValidFrames()
    {
        var config = ClusterConfig.Create([new NodeId(1), new NodeId(2)], learners: [new NodeId(3)], addresses: [new(new NodeId(1), "http://a:1")]);
        Message[] messages =
        [
            new RequestVote(new NodeId(1), new NodeId(2), new Term(5), new LogIndex(9), new Term(4), PreVote: true, Transfer: false),
            new RequestVoteResponse(new NodeId(2), new NodeId(1), new Term(5), Granted: true, PreVote: false),
            new AppendEntries(new NodeId(1), new NodeId(2), new Term(5), new LogIndex(9), new Term(4),
                [new LogEntry(new LogIndex(10), new Term(5), EntryKind.Normal, new byte[] { 1, 2, 3 }),
                 new LogEntry(new LogIndex(11), new Term(5), EntryKind.Config, config.Encode())], new LogIndex(9)),
            new AppendEntriesResponse(new NodeId(2), new NodeId(1), new Term(5), true, new LogIndex(11), LogIndex.Zero, Term.Zero),
            new Heartbeat(new NodeId(1), new NodeId(2), new Term(5), new LogIndex(9), 3),
            new HeartbeatResponse(new NodeId(2), new NodeId(1), new Term(5), 3),
            new TimeoutNow(new NodeId(1), new NodeId(2), new Term(5)),
            new InstallSnapshot(new NodeId(1), new NodeId(2), new Term(5), new SnapshotMetadata(new LogIndex(100), new Term(5), config)),
        ];
        return [.. messages.Select(m => MessageMapper.ToProto(m).ToByteArray())];
    }

    private static byte[] RandomBytes(Random random)
    {
        var bytes = new byte[random.Next(0, 256)];
        random.NextBytes(bytes);
        return bytes;
    }

    private static byte[] Mutate(Random random, byte[] frame)
    {
        var bytes = new List<byte>(frame);
        var mutations = random.Next(1, 5);
        for (var m = 0; m < mutations && bytes.Count > 0; m++)
        {
            var at = random.Next(bytes.Count);
            switch (random.Next(6))
            {
                case 0:
                    bytes[at] = (byte)random.Next(256); // a byte replaced
                    break;
                case 1:
                    bytes[at] ^= (byte)(1 << random.Next(8)); // a bit flipped
                    break;
                case 2:
                    bytes.RemoveRange(at, Math.Min(bytes.Count - at, random.Next(1, 8))); // a cut
                    break;
                case 3:
                    bytes.InsertRange(at, Enumerable.Range(0, random.Next(1, 8)).Select(_ => (byte)random.Next(256))); // an insertion
                    break;
                case 4:
                    bytes.InsertRange(at, bytes.GetRange(at, Math.Min(bytes.Count - at, random.Next(1, 16)))); // a repeat
                    break;
                default:
                    bytes[at] = 0xFF; // varints that never end, huge lengths
                    break;
            }
        }
        return [.. bytes];
    }
}
