namespace RaftKv.RaftCore.Tests;

/// <summary>
/// Pure RaftNodes wired by hand for paper tests: every Ready is persisted in full, messages wait in a list until
/// delivered, and links can be cut. Nothing here sleeps or runs a thread.
/// </summary>
internal sealed class TestCluster
{
    private readonly List<Message> _inFlight = [];
    private readonly HashSet<NodeId> _isolated = [];

    public TestCluster(int size, Func<RaftOptions, RaftOptions>? configure = null)
    {
        var config = ClusterConfig.Create(Enumerable.Range(1, size).Select(i => new NodeId((ulong)i)));
        for (var i = 1; i <= size; i++)
        {
            var options = new RaftOptions { Id = new NodeId((ulong)i), RandomSeed = i };
            Nodes.Add(new RaftNode(configure?.Invoke(options) ?? options, PersistentState.Bootstrap(config)));
        }
    }

    public List<RaftNode> Nodes { get; } = [];

    public List<Message> Sent { get; } = [];

    public List<ReadState> ReadStates { get; } = [];

    public List<LogEntry> Applied(int id) => _applied.TryGetValue(id, out var list) ? list : [];

    private readonly Dictionary<int, List<LogEntry>> _applied = [];

    public RaftNode this[int id] => Nodes[id - 1];

    public void Isolate(int id) => _isolated.Add(new NodeId((ulong)id));

    public void Heal() => _isolated.Clear();

    /// <summary>Handles every node's Ready and delivers messages until nothing moves.</summary>
    public void Stabilize()
    {
        for (var round = 0; round < 1_000; round++)
        {
            var moved = false;
            foreach (var node in Nodes)
            {
                while (node.HasReady)
                {
                    Handle(node);
                    moved = true;
                }
            }
            if (_inFlight.Count > 0)
            {
                var batch = _inFlight.ToList();
                _inFlight.Clear();
                foreach (var message in batch)
                {
                    if (!_isolated.Contains(message.From) && !_isolated.Contains(message.To))
                    {
                        Nodes[(int)message.To.Value - 1].Step(message);
                    }
                }
                moved = true;
            }
            if (!moved)
            {
                return;
            }
        }
        throw new InvalidOperationException("the cluster did not settle");
    }

    public RaftNode ElectLeader(int id)
    {
        this[id].Campaign();
        Stabilize();
        this[id].Role.Should().Be(Role.Leader);
        return this[id];
    }

    private void Handle(RaftNode node)
    {
        var ready = node.GetReady();
        var messages = ready.Messages.Concat(ready.MessagesAfterPersist).ToList();
        Sent.AddRange(messages);
        _inFlight.AddRange(messages);
        ReadStates.AddRange(ready.ReadStates);
        var id = (int)node.Id.Value;
        if (!_applied.TryGetValue(id, out var applied))
        {
            _applied[id] = applied = [];
        }
        applied.AddRange(ready.CommittedEntries);
        node.Advance(ready);
    }
}
