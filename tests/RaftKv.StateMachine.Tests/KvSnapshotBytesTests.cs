using RaftKv.RaftCore;

namespace RaftKv.StateMachine.Tests;

/// <summary>
/// The snapshot format's bytes are a contract between builds: a node restores a snapshot another build wrote, and nodes
/// compare digests of them. These bytes were written by the store when it kept values as strings in immutable maps
/// (main at 167e6b7); the store must still write them for the same log.
/// </summary>
public sealed class KvSnapshotBytesTests
{
    private const string WrittenByTheStringStore =
        "3353564B09000000000000000500000001620773776170706564080000000000000001000000000000000000000000000000"
        + "05656D70747900050000000000000005000000000000000000000000000000066C65617365640C77697468206C6561736520"
        + "360700000000000000070000000000000006000000000000000374786E10696E2061207472616E73616374696F6E09000000"
        + "00000000090000000000000000000000000000000EC3A974C3A92FD0BAD0BBD18ED18715D0B7D0BDD0B0D187D0B5D0BDD0B8"
        + "D0B520F09F98800300000000000000030000000000000000000000000000000200000008636C69656E742D31010000000000"
        + "000003000000000000002D000000010100010300000000000000030000000000000015000000D0B7D0BDD0B0D187D0B5D0BD"
        + "D0B8D0B520F09F988008636C69656E742D32070000000000000008000000000000001F000000010100010800000000000000"
        + "080000000000000007000000737761707065640100000006000000000000003C00000000000000";

    [Fact]
    public void A_snapshot_has_the_bytes_the_store_wrote_when_it_kept_strings()
    {
        var machine = new KvStateMachine();
        byte[][] log =
        [
            new KvCommand(KvOperation.Set, "b", "plain").Encode(),
            new KvCommand(KvOperation.Set, "a", "to be deleted").Encode(),
            new KvCommand(KvOperation.Set, "\u00E9t\u00E9/\u043A\u043B\u044E\u0447", "\u0437\u043D\u0430\u0447\u0435\u043D\u0438\u0435 \U0001F600", ClientId: "client-1", Sequence: 1).Encode(),
            new KvCommand(KvOperation.Delete, "a").Encode(),
            new KvCommand(KvOperation.Set, "empty", "").Encode(),
            KvLeaseCommand.Grant(60).Encode(),
            new KvCommand(KvOperation.Set, "leased", "with lease 6", Lease: 6).Encode(),
            new KvCommand(KvOperation.Cas, "b", "swapped", "plain", ClientId: "client-2", Sequence: 7).Encode(),
            new KvTxn([new KvCompare("b", KvCompareTarget.Value, KvCompareOp.Equal, "swapped", 0)],
                [new KvTxnOp(KvTxnOpKind.Put, "txn", "in a transaction"), new KvTxnOp(KvTxnOpKind.Get, "b")], []).Encode(),
        ];
        for (var i = 0; i < log.Length; i++)
        {
            machine.Apply(new LogEntry(new LogIndex((ulong)i + 1), new Term(1), EntryKind.Normal, log[i]));
        }
        using var image = new MemoryStream();

        machine.CaptureSnapshot().WriteTo(image);

        Convert.ToHexString(image.ToArray()).Should().Be(WrittenByTheStringStore);
        var restored = new KvStateMachine();
        image.Position = 0;
        restored.Restore(image);
        restored.Digest().Should().Be(machine.Digest());
    }
}
