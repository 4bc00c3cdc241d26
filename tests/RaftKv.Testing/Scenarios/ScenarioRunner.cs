using System.Globalization;
using System.Text;
using RaftKv.RaftCore;

namespace RaftKv.Testing.Scenarios;

/// <summary>
/// Runs scenario scripts against pure <see cref="RaftNode"/>s, in the manner of etcd-io/raft's interaction tests.
/// A script is a list of stanzas separated by blank lines; each is one command, a line "----", and the transcript the
/// command is expected to print. Lines starting with '#' are comments. The runner produces the actual transcript; the
/// test compares it (set RAFTKV_REWRITE_SCENARIOS=1 to rewrite the expected parts, then review the diff). Commands named
/// "check" assert facts directly and fail the scenario whatever the transcript says.
/// </summary>
public sealed class ScenarioRunner
{
    private readonly SortedDictionary<NodeId, ScenarioNode> _nodes = [];
    private readonly List<Message> _network = [];
    private readonly HashSet<(NodeId, NodeId)> _cut = [];
    private readonly StringBuilder _output = new();

    /// <summary>Runs a whole script and returns it rewritten with the actual transcript of every stanza.</summary>
    public static string Run(string script)
    {
        ArgumentNullException.ThrowIfNull(script);
        var runner = new ScenarioRunner();
        var result = new StringBuilder();
        var lines = script.Replace("\r\n", "\n", StringComparison.Ordinal).Split('\n');
        var i = 0;
        var lineNumber = 0;
        while (i < lines.Length)
        {
            var line = lines[i];
            if (line.Length == 0 || line.StartsWith('#'))
            {
                result.Append(line).Append('\n');
                i++;
                continue;
            }
            var command = line;
            lineNumber = i + 1;
            i++;
            if (i >= lines.Length || lines[i] != "----")
            {
                throw new FormatException($"line {lineNumber}: '{command}' must be followed by a line '----'");
            }
            i++;
            while (i < lines.Length && lines[i].Length > 0)
            {
                i++; // the expected transcript: replaced by the actual one
            }
            string output;
            try
            {
                output = runner.Execute(command);
            }
            catch (ScenarioCheckFailedException failure)
            {
                var tail = string.Join('\n', result.ToString().Split('\n').TakeLast(80));
                throw new ScenarioCheckFailedException($"line {lineNumber}: {command}: {failure.Message}\ntranscript so far:\n{tail}");
            }
            result.Append(command).Append('\n').Append("----\n").Append(output.Length == 0 ? "ok\n" : output);
        }
        return result.ToString().TrimEnd('\n') + "\n";
    }

    private string Execute(string line)
    {
        _output.Clear();
        var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var args = words.Skip(1).ToArray();
        switch (words[0])
        {
            case "add-nodes":
                AddNodes(args);
                break;
            case "add-joiner":
                AddJoiner(args);
                break;
            case "conf-change":
                ConfChange(Node(args[0]), args[1..]);
                break;
            case "campaign":
                Node(args[0]).Raft.Campaign();
                break;
            case "tick":
                Tick(args);
                break;
            case "tick-election":
                TickElection(Nodes(args));
                break;
            case "tick-heartbeat":
                foreach (var node in Nodes(args))
                {
                    for (var i = 0; i < node.Options.HeartbeatIntervalTicks; i++)
                    {
                        node.Raft.Tick();
                    }
                }
                break;
            case "propose":
                Propose(Node(args[0]), args.Length > 1 ? args[1] : "");
                break;
            case "read-index":
                ReadIndex(Node(args[0]), ulong.Parse(args[1], CultureInfo.InvariantCulture));
                break;
            case "transfer-leadership":
                var accepted = Node(args[0]).Raft.TransferLeadership(ParseId(args[1]));
                Say(accepted ? $"{ParseId(args[0])} hands leadership to {ParseId(args[1])}" : "refused");
                break;
            case "process-ready":
                foreach (var node in Nodes(args))
                {
                    ProcessReady(node);
                }
                break;
            case "deliver-msgs":
                Deliver(Filter(args), Arg(args, "count") is { } count ? int.Parse(count, CultureInfo.InvariantCulture) : int.MaxValue);
                break;
            case "drop-msgs":
                Drop(Filter(args));
                break;
            case "stabilize":
                Stabilize(Nodes(args));
                break;
            case "partition":
                Partition(line[(line.IndexOf(' ', StringComparison.Ordinal) + 1)..]);
                break;
            case "isolate":
                Partition(args[0] + " | " + string.Join(' ', _nodes.Keys.Where(id => id != ParseId(args[0])).Select(id => id.Value)));
                break;
            case "heal":
                _cut.Clear();
                Say("healed");
                break;
            case "restart":
                Restart(Node(args[0]));
                break;
            case "status":
                foreach (var node in Nodes(args))
                {
                    Say(Describe(node));
                }
                break;
            case "log":
                foreach (var node in Nodes(args))
                {
                    Say($"{node.Id}: " + string.Join(", ", node.Raft.Entries(LogIndex.Zero, node.Raft.LastIndex)) + $" (commit {node.Raft.CommitIndex.Value})");
                }
                break;
            case "check":
                Check(Node(args[0]), args.Skip(1));
                break;
            default:
                throw new FormatException($"unknown command '{words[0]}'");
        }
        return _output.ToString();
    }

    // ---------------------------------------------------------------- nodes

    private void AddNodes(string[] args)
    {
        var count = int.Parse(args[0], CultureInfo.InvariantCulture);
        var config = ClusterConfig.Create(Enumerable.Range(1, count).Select(i => new NodeId((ulong)i)));
        for (var i = 1; i <= count; i++)
        {
            var id = new NodeId((ulong)i);
            _nodes[id] = new ScenarioNode(id, NodeOptions(id, args), PersistentState.Bootstrap(config));
        }
        Say($"{count} nodes: {config}");
    }

    /// <summary>A node with an empty disk and no configuration: it waits to be added (a learner first) by the leader.</summary>
    private void AddJoiner(string[] args)
    {
        var id = ParseId(args[0]);
        var empty = new PersistentState(HardState.Empty, null, LogIndex.Zero, Term.Zero, []);
        _nodes[id] = new ScenarioNode(id, NodeOptions(id, args), empty);
        Say($"{id} waits to be added: {Describe(_nodes[id])}");
    }

    private static RaftOptions NodeOptions(NodeId id, string[] args) => new()
    {
        Id = id,
        RandomSeed = (int)id.Value,
        ElectionTimeoutTicks = IntArg(args, "election", 10),
        HeartbeatIntervalTicks = IntArg(args, "heartbeat", 1),
        PreVote = BoolArg(args, "prevote", true),
        CheckQuorum = BoolArg(args, "checkquorum", true),
        MaxAppendBytes = IntArg(args, "max-append-bytes", 1024 * 1024),
        MaxPromoteLagEntries = IntArg(args, "max-promote-lag", 1_000),
    };

    private void ConfChange(ScenarioNode node, string[] args)
    {
        var kind = args[0] switch
        {
            "add-learner" => ConfChangeKind.AddLearner,
            "promote" => ConfChangeKind.Promote,
            "remove" => ConfChangeKind.Remove,
            _ => throw new FormatException($"conf-change: unknown change '{args[0]}' (add-learner, promote, remove)"),
        };
        var change = new ConfChange(kind, ParseId(args[1]));
        var result = node.Raft.ProposeConfChange(change);
        Say(result.Status == ProposeStatus.Accepted
            ? $"{node.Id} accepted '{change}' at {result.Index.Value}/{result.Term.Value}: {node.Raft.Config}"
            : $"{node.Id} refused '{change}' ({result.Status}): {result.Reason}");
    }

    private void Restart(ScenarioNode node)
    {
        node.Restart();
        _network.RemoveAll(m => m.To == node.Id);
        Say($"{node.Id} restarted from its disk: {Describe(node)}");
    }

    private void Tick(string[] args)
    {
        var node = Node(args[0]);
        var count = args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 1;
        var before = node.Raft.SoftState;
        for (var i = 0; i < count; i++)
        {
            node.Raft.Tick();
        }
        if (node.Raft.SoftState != before)
        {
            Say(Describe(node));
        }
    }

    private void TickElection(IReadOnlyList<ScenarioNode> nodes)
    {
        // Ticks the nodes in step until one of them starts a (pre-)campaign, at most twice the election timeout.
        var before = nodes.Select(n => n.Raft.SoftState).ToList();
        var ticks = 0;
        while (ticks < 2 * nodes[0].Options.ElectionTimeoutTicks && nodes.Select(n => n.Raft.SoftState).SequenceEqual(before))
        {
            foreach (var node in nodes)
            {
                node.Raft.Tick();
            }
            ticks++;
        }
        Say($"ticked {ticks} times");
        for (var i = 0; i < nodes.Count; i++)
        {
            if (nodes[i].Raft.SoftState != before[i])
            {
                Say(Describe(nodes[i]));
            }
        }
    }

    private void Propose(ScenarioNode node, string data)
    {
        var result = node.Raft.Propose(Encoding.UTF8.GetBytes(data));
        Say(result.Status == ProposeStatus.Accepted
            ? $"{node.Id} accepted '{data}' at {result.Index.Value}/{result.Term.Value}"
            : $"{node.Id} refused '{data}': {result.Reason} (leader {result.LeaderHint})");
    }

    private void ReadIndex(ScenarioNode node, ulong requestId)
    {
        var accepted = node.Raft.ReadIndex(requestId, out var leader);
        Say(accepted ? $"{node.Id} read {requestId} waits for a ReadIndex round" : $"{node.Id} refused read {requestId} (leader {leader})");
    }

    // ---------------------------------------------------------------- Ready and messages

    private void ProcessReady(ScenarioNode node)
    {
        if (!node.Raft.HasReady)
        {
            return;
        }
        var ready = node.Raft.GetReady();
        Say($"> {node.Id} handles Ready");
        if (ready.SoftState != node.ReportedSoftState)
        {
            node.ReportedSoftState = ready.SoftState;
            Say($"  {ready.SoftState.Role} t{ready.SoftState.Term.Value} leader={ready.SoftState.Leader}");
        }
        if (ready.HardState is { } hardState)
        {
            Say($"  hard state {hardState}");
        }
        if (ready.Snapshot is { } snapshot)
        {
            Say($"  install {snapshot}");
        }
        if (ready.Entries.Count > 0)
        {
            Say("  persist " + string.Join(", ", ready.Entries));
        }
        node.Persist(ready);
        foreach (var message in ready.Messages.Concat(ready.MessagesAfterPersist))
        {
            if (_cut.Contains((message.From, message.To)))
            {
                Say("  dropped " + message); // sent into a partition: lost
                continue;
            }
            Say("  send " + message);
            _network.Add(message);
        }
        if (ready.CommittedEntries.Count > 0)
        {
            Say("  apply " + string.Join(", ", ready.CommittedEntries.Select(e => e.IsNoop || e.Kind == EntryKind.Config ? e.ToString() : $"{e.Index.Value}/{e.Term.Value} '{Encoding.UTF8.GetString(e.Data.Span)}'")));
        }
        foreach (var read in ready.ReadStates)
        {
            Say(read.Status == ReadStatus.Confirmed
                ? $"  read {read.RequestId} confirmed at index {read.Index.Value}"
                : $"  read {read.RequestId} failed: not the leader (leader {read.LeaderHint})");
        }
        node.Raft.Advance(ready);
    }

    private void Deliver(Func<Message, bool> filter, int count)
    {
        var delivered = 0;
        foreach (var message in _network.Where(filter).ToList())
        {
            if (delivered++ >= count)
            {
                break;
            }
            _network.Remove(message);
            if (_cut.Contains((message.From, message.To)))
            {
                Say("  dropped " + message);
                continue;
            }
            Say("  deliver " + message);
            _nodes[message.To].Raft.Step(message);
        }
    }

    private void Drop(Func<Message, bool> filter)
    {
        foreach (var message in _network.Where(filter).ToList())
        {
            _network.Remove(message);
            Say("  dropped " + message);
        }
    }

    private void Stabilize(IReadOnlyList<ScenarioNode> nodes)
    {
        var ids = nodes.Select(n => n.Id).ToHashSet();
        for (var round = 0; round < 1_000; round++)
        {
            var busy = false;
            foreach (var node in nodes)
            {
                if (node.Raft.HasReady)
                {
                    ProcessReady(node);
                    busy = true;
                }
            }
            var waiting = _network.Where(m => ids.Contains(m.To)).ToList();
            if (waiting.Count > 0)
            {
                busy = true;
                Deliver(m => ids.Contains(m.To), int.MaxValue);
            }
            if (!busy)
            {
                return;
            }
        }
        throw new ScenarioCheckFailedException("stabilize did not settle in 1000 rounds");
    }

    private static Func<Message, bool> Filter(string[] args)
    {
        var from = Arg(args, "from") is { } f ? ParseId(f) : (NodeId?)null;
        var to = Arg(args, "to") is { } t ? ParseId(t) : (NodeId?)null;
        var type = Arg(args, "type");
        var plainIds = args.Where(a => !a.Contains('=', StringComparison.Ordinal)).Select(ParseId).ToHashSet();
        return m => (from is null || m.From == from) && (to is null || m.To == to) && (plainIds.Count == 0 || plainIds.Contains(m.To))
            && (type is null || m.GetType().Name == type);
    }

    private void Partition(string spec)
    {
        var groups = spec.Split('|').Select(g => g.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(ParseId).ToHashSet()).ToList();
        _cut.Clear();
        foreach (var a in _nodes.Keys)
        {
            foreach (var b in _nodes.Keys)
            {
                var groupA = groups.FindIndex(g => g.Contains(a));
                var groupB = groups.FindIndex(g => g.Contains(b));
                if (a != b && groupA != groupB)
                {
                    _cut.Add((a, b));
                }
            }
        }
        Say("partitioned: " + string.Join(" | ", groups.Select(g => string.Join(' ', g.Order()))));
    }

    // ---------------------------------------------------------------- checks

    private static void Check(ScenarioNode node, IEnumerable<string> expectations)
    {
        var raft = node.Raft;
        foreach (var expectation in expectations)
        {
            var split = expectation.IndexOf('=', StringComparison.Ordinal);
            var (key, expected) = (expectation[..split], expectation[(split + 1)..]);
            var actual = key switch
            {
                "role" => raft.Role.ToString(),
                "term" => raft.Term.Value.ToString(CultureInfo.InvariantCulture),
                "leader" => raft.Leader.ToString(),
                "vote" => raft.Vote.ToString(),
                "commit" => raft.CommitIndex.Value.ToString(CultureInfo.InvariantCulture),
                "applied" => raft.AppliedIndex.Value.ToString(CultureInfo.InvariantCulture),
                "last" => raft.LastIndex.Value.ToString(CultureInfo.InvariantCulture),
                "lastterm" => raft.LastTerm.Value.ToString(CultureInfo.InvariantCulture),
                "voters" => string.Join(',', raft.Config.Voters),
                "learners" => string.Join(',', raft.Config.Learners),
                "outgoing" => string.Join(',', raft.Config.OutgoingVoters),
                "config-committed" => raft.ConfigCommitted ? "true" : "false",
                "peers" => string.Join(',', raft.Status().Peers.Select(p => p.Id)),
                _ when key.StartsWith("term@", StringComparison.Ordinal) =>
                    raft.TermAt(new LogIndex(ulong.Parse(key[5..], CultureInfo.InvariantCulture)))?.Value.ToString(CultureInfo.InvariantCulture) ?? "none",
                _ => throw new FormatException($"check: unknown field '{key}'"),
            };
            if (actual != expected)
            {
                throw new ScenarioCheckFailedException($"{node.Id} {key} is {actual}, expected {expected}");
            }
        }
    }

    private static string Describe(ScenarioNode node)
    {
        var raft = node.Raft;
        return $"{node.Id} {raft.Role} t{raft.Term.Value} leader={raft.Leader} vote={raft.Vote} last={raft.LastIndex.Value}/{raft.LastTerm.Value} commit={raft.CommitIndex.Value} applied={raft.AppliedIndex.Value}";
    }

    private ScenarioNode Node(string id) =>
        _nodes.TryGetValue(ParseId(id), out var node) ? node : throw new FormatException($"no node {id}");

    private List<ScenarioNode> Nodes(string[] args)
    {
        var ids = args.Where(a => !a.Contains('=', StringComparison.Ordinal)).ToList();
        return ids.Count == 0 ? [.. _nodes.Values] : [.. ids.Select(Node)];
    }

    private static NodeId ParseId(string text) =>
        NodeId.TryParse(text, out var id) ? id : throw new FormatException($"'{text}' is not a node id");

    private static string? Arg(string[] args, string name) =>
        args.FirstOrDefault(a => a.StartsWith(name + "=", StringComparison.Ordinal))?[(name.Length + 1)..];

    private static int IntArg(string[] args, string name, int fallback) =>
        Arg(args, name) is { } text ? int.Parse(text, CultureInfo.InvariantCulture) : fallback;

    private static bool BoolArg(string[] args, string name, bool fallback) =>
        Arg(args, name) is { } text ? bool.Parse(text) : fallback;

    private void Say(string line) => _output.Append(line).Append('\n');

    /// <summary>A scenario node: a RaftNode and the disk it persists to (every Ready is persisted in full).</summary>
    private sealed class ScenarioNode(NodeId id, RaftOptions options, PersistentState initial)
    {
        private readonly List<LogEntry> _entries = [.. initial.Entries];
        private HardState _hardState = initial.HardState;
        private SnapshotMetadata? _snapshot = initial.Snapshot;
        private LogIndex _baseIndex = initial.BaseIndex;
        private Term _baseTerm = initial.BaseTerm;

        public NodeId Id { get; } = id;

        public RaftOptions Options { get; } = options;

        public RaftNode Raft { get; private set; } = new(options, initial);

        public SoftState ReportedSoftState { get; set; }

        public void Persist(Ready ready)
        {
            if (ready.Snapshot is { } snapshot)
            {
                _entries.Clear();
                _snapshot = snapshot;
                _baseIndex = snapshot.Index;
                _baseTerm = snapshot.Term;
            }
            if (ready.Entries.Count > 0)
            {
                var keep = (int)(ready.Entries[0].Index.Value - _baseIndex.Value - 1);
                _entries.RemoveRange(keep, _entries.Count - keep);
                _entries.AddRange(ready.Entries);
            }
            if (ready.HardState is { } hardState)
            {
                _hardState = hardState;
            }
        }

        public void Restart()
        {
            Raft = new RaftNode(Options, new PersistentState(_hardState, _snapshot, _baseIndex, _baseTerm, [.. _entries]));
            ReportedSoftState = default;
        }
    }
}

public sealed class ScenarioCheckFailedException : Exception
{
    public ScenarioCheckFailedException(string message) : base(message)
    {
    }

    public ScenarioCheckFailedException()
    {
    }

    public ScenarioCheckFailedException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
