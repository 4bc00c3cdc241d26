using RaftKv.RaftCore;

namespace RaftKv.StateMachine;

/// <summary>
/// An ordered map from strings (ordinal order: UTF-16 code units) to values, changed in place, whose
/// <see cref="Clone"/> is O(1): a B+ tree whose nodes each remember which map owns them. A map changes the nodes it owns
/// in place and copies any other before changing it, so after a clone neither map's changes reach the other, and only
/// the nodes on the paths written since are copied (etcd's index is the same idea: google/btree's copy-on-write clone).
/// The KV store writes in place between snapshots and pays a path of copies only for the first write to each part of
/// the tree after one. Positions are counted (each branch knows how many items are under it), so the rank of a key and
/// the count of a range cost O(log n).
/// </summary>
/// <remarks>
/// Not thread-safe: one thread changes a map. Another thread may read a clone that nobody changes while the original
/// goes on changing, since they share only nodes that neither changes.
/// </remarks>
internal sealed class KvMap<TValue>
{
    /// <summary>Items in a leaf and children of a branch, at most; the default, and the smallest a map accepts.</summary>
    public const int DefaultCapacity = 64;

    public const int SmallestCapacity = 8;

    private readonly int _capacity;

    // A node whose Owner is this object may be changed in place; any other is shared with a clone and copied first.
    private object _owner = new();
    private Node _root;

    public KvMap(int capacity = DefaultCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, SmallestCapacity);
        _capacity = capacity;
        _root = new Leaf(_owner, capacity);
    }

    private KvMap(KvMap<TValue> source)
    {
        _capacity = source._capacity;
        _root = source._root;
    }

    public int Count => _root.Count;

    // A node other than the root holds at least this many items or children: deletes merge or even out neighbours below it.
    private int Minimum => _capacity / 4;

    /// <summary>
    /// A copy of the map as it is now, in O(1). From here on, each map copies a shared node before it changes it.
    /// </summary>
    public KvMap<TValue> Clone()
    {
        _owner = new object();
        return new KvMap<TValue>(this);
    }

    public bool TryGetValue(string key, out TValue value)
    {
        var leaf = FindLeaf(key);
        var at = Search(leaf.Keys, leaf.N, key);
        if (at >= 0)
        {
            value = leaf.Values[at];
            return true;
        }
        value = default!;
        return false;
    }

    /// <summary>
    /// A map of items given in strictly increasing key order, built bottom-up with full nodes (what a restored snapshot
    /// holds: inserting them one by one would leave every node half full).
    /// </summary>
    public static KvMap<TValue> FromSorted(IEnumerable<KeyValuePair<string, TValue>> items, int capacity = DefaultCapacity)
    {
        ArgumentNullException.ThrowIfNull(items);
        var map = new KvMap<TValue>(capacity);
        var level = new List<Node>();
        var lows = new List<string>();
        Leaf? leaf = null;
        string? last = null;
        foreach (var (key, value) in items)
        {
            if (last is not null && string.CompareOrdinal(last, key) >= 0)
            {
                throw new ArgumentException($"'{key}' comes after '{last}': keys must be strictly increasing", nameof(items));
            }
            if (leaf is null || leaf.N == capacity)
            {
                leaf = new Leaf(map._owner, capacity);
                level.Add(leaf);
                lows.Add(key);
            }
            leaf.Keys[leaf.N] = key;
            leaf.Values[leaf.N] = value;
            leaf.N++;
            last = key;
        }
        if (level.Count == 0)
        {
            return map;
        }
        if (level.Count > 1 && level[^1].N < map.Minimum)
        {
            // Even out the last two leaves: together they hold more than a full one, so each keeps more than half.
            var previous = (Leaf)level[^2];
            var end = (Leaf)level[^1];
            var keep = (previous.N + end.N) / 2;
            MoveItems(previous, keep, end, 0, previous.N - keep);
            lows[^1] = end.Keys[0]!;
        }
        while (level.Count > 1)
        {
            // Cut the level into groups of a full branch each; the last two groups share evenly if the last is too small.
            var sizes = new List<int>();
            for (var left = level.Count; left > 0; left -= capacity)
            {
                sizes.Add(Math.Min(capacity, left));
            }
            if (sizes.Count > 1 && sizes[^1] < map.Minimum)
            {
                var both = sizes[^2] + sizes[^1];
                sizes[^2] = both - (both / 2);
                sizes[^1] = both / 2;
            }
            var parents = new List<Node>(sizes.Count);
            var parentLows = new List<string>(sizes.Count);
            var start = 0;
            foreach (var size in sizes)
            {
                var branch = new Branch(map._owner, capacity);
                for (var i = 0; i < size; i++)
                {
                    branch.Children[i] = level[start + i];
                    if (i > 0)
                    {
                        branch.Keys[i - 1] = lows[start + i];
                    }
                }
                branch.N = size;
                branch.Total = branch.SumOfChildren();
                parents.Add(branch);
                parentLows.Add(lows[start]);
                start += size;
            }
            level = parents;
            lows = parentLows;
        }
        map._root = level[0];
        return map;
    }

    /// <summary>Sets a key's value; true if the key is new.</summary>
    public bool Set(string key, TValue value)
    {
        ArgumentNullException.ThrowIfNull(key);
        _root = Writable(_root);
        var added = false;
        if (Insert(_root, key, value, ref added) is var (separator, right))
        {
            var root = new Branch(_owner, _capacity);
            root.Children[0] = _root;
            root.Children[1] = right;
            root.Keys[0] = separator;
            root.N = 2;
            root.Total = _root.Count + right.Count;
            _root = root;
        }
        return added;
    }

    /// <summary>Removes a key; false if it was not there (and nothing was copied).</summary>
    public bool Remove(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (!TryGetValue(key, out _))
        {
            return false;
        }
        _root = Writable(_root);
        Delete(_root, key);
        if (_root is Branch { N: 1 } branch)
        {
            _root = branch.Children[0];
        }
        return true;
    }

    /// <summary>How many keys sort before <paramref name="key"/> (the position it has, or would have).</summary>
    public int Rank(string key)
    {
        var rank = 0;
        var node = _root;
        while (node is Branch branch)
        {
            var child = ChildIndex(branch, key);
            for (var i = 0; i < child; i++)
            {
                rank += branch.Children[i].Count;
            }
            node = branch.Children[child];
        }
        var leaf = (Leaf)node;
        var at = Search(leaf.Keys, leaf.N, key);
        return rank + (at >= 0 ? at : ~at);
    }

    /// <summary>The items from <paramref name="key"/> on (or after it, when not <paramref name="inclusive"/>), in key order.</summary>
    public IEnumerable<KeyValuePair<string, TValue>> From(string key, bool inclusive = true)
    {
        var path = new Stack<(Branch Branch, int Child)>();
        var node = _root;
        while (node is Branch branch)
        {
            var child = ChildIndex(branch, key);
            path.Push((branch, child));
            node = branch.Children[child];
        }
        var leaf = (Leaf)node;
        var at = Search(leaf.Keys, leaf.N, key);
        at = at >= 0 ? (inclusive ? at : at + 1) : ~at;
        while (true)
        {
            for (; at < leaf.N; at++)
            {
                yield return new KeyValuePair<string, TValue>(leaf.Keys[at]!, leaf.Values[at]);
            }
            while (path.Count > 0 && path.Peek().Child + 1 >= path.Peek().Branch.N)
            {
                path.Pop();
            }
            if (path.Count == 0)
            {
                yield break;
            }
            var (parent, index) = path.Pop();
            path.Push((parent, index + 1));
            node = parent.Children[index + 1];
            while (node is Branch next)
            {
                path.Push((next, 0));
                node = next.Children[0];
            }
            leaf = (Leaf)node;
            at = 0;
        }
    }

    /// <summary>Every item, in key order.</summary>
    public IEnumerable<KeyValuePair<string, TValue>> All() => From("");

    /// <summary>
    /// Checks the tree's shape (for tests): keys in order inside nodes and across separators, counts that add up, every
    /// node but the root at least a quarter full, every leaf at the same depth. Throws on the first thing wrong.
    /// </summary>
    internal void CheckShape()
    {
        var leafDepth = -1;
        Check(_root, null, null, 0, isRoot: true, ref leafDepth);
    }

    private void Check(Node node, string? low, string? high, int depth, bool isRoot, ref int leafDepth)
    {
        Invariant.Assert(node.N <= _capacity, $"a node holds {node.N} > {_capacity}");
        Invariant.Assert(isRoot || node.N >= Minimum, $"a node holds {node.N} < {Minimum}");
        if (node is Leaf leaf)
        {
            Invariant.Assert(leafDepth < 0 || leafDepth == depth, "leaves at different depths");
            leafDepth = depth;
            for (var i = 0; i < leaf.N; i++)
            {
                var key = leaf.Keys[i]!;
                Invariant.Assert(i == 0 || string.CompareOrdinal(leaf.Keys[i - 1], key) < 0, "a leaf's keys out of order");
                Invariant.Assert(low is null || string.CompareOrdinal(low, key) <= 0, $"'{key}' below its separator '{low}'");
                Invariant.Assert(high is null || string.CompareOrdinal(key, high) < 0, $"'{key}' at or above its separator '{high}'");
            }
            return;
        }
        var branch = (Branch)node;
        Invariant.Assert(isRoot ? branch.N >= 2 : branch.N >= Minimum, "a branch with too few children");
        var total = 0;
        for (var i = 0; i < branch.N; i++)
        {
            var childLow = i == 0 ? low : branch.Keys[i - 1];
            var childHigh = i == branch.N - 1 ? high : branch.Keys[i];
            Check(branch.Children[i], childLow, childHigh, depth + 1, isRoot: false, ref leafDepth);
            total += branch.Children[i].Count;
        }
        Invariant.Assert(total == branch.Total, $"a branch counts {branch.Total} items under it, its children {total}");
    }

    private Leaf FindLeaf(string key)
    {
        var node = _root;
        while (node is Branch branch)
        {
            node = branch.Children[ChildIndex(branch, key)];
        }
        return (Leaf)node;
    }

    /// <summary>Inserts or replaces under a node this map owns; a split's separator and new right half, if it split.</summary>
    private (string Separator, Node Right)? Insert(Node node, string key, TValue value, ref bool added)
    {
        if (node is Leaf leaf)
        {
            var at = Search(leaf.Keys, leaf.N, key);
            if (at >= 0)
            {
                leaf.Values[at] = value;
                return null;
            }
            added = true;
            at = ~at;
            if (leaf.N < _capacity)
            {
                leaf.InsertAt(at, key, value);
                return null;
            }
            var right = new Leaf(_owner, _capacity);
            var keep = SplitAt(at, leaf.N);
            MoveItems(leaf, keep, right, 0, leaf.N - keep);
            if (at <= leaf.N)
            {
                leaf.InsertAt(at, key, value);
            }
            else
            {
                right.InsertAt(at - leaf.N, key, value);
            }
            return (right.Keys[0]!, right);
        }
        var branch = (Branch)node;
        var index = ChildIndex(branch, key);
        var child = Writable(branch.Children[index]);
        branch.Children[index] = child;
        if (child is Leaf full && full.N == _capacity && Search(full.Keys, full.N, key) < 0 && Spill(branch, index, full))
        {
            index = ChildIndex(branch, key);
            child = Writable(branch.Children[index]);
            branch.Children[index] = child;
        }
        var split = Insert(child, key, value, ref added);
        if (added)
        {
            branch.Total++;
        }
        if (split is not var (separator, newChild))
        {
            return null;
        }
        if (branch.N < _capacity)
        {
            branch.InsertAt(index + 1, separator, newChild);
            return null;
        }
        // Split the branch: the left keeps the first part of the children, the separator between the parts goes up.
        var half = SplitAt(index + 1, branch.N);
        var rightBranch = new Branch(_owner, _capacity);
        var up = branch.Keys[half - 1]!;
        Array.Copy(branch.Children, half, rightBranch.Children, 0, branch.N - half);
        Array.Copy(branch.Keys, half, rightBranch.Keys, 0, branch.N - half - 1);
        rightBranch.N = branch.N - half;
        Array.Clear(branch.Children, half, branch.N - half);
        Array.Clear(branch.Keys, half - 1, branch.N - half);
        branch.N = half;
        if (index + 1 <= half)
        {
            branch.InsertAt(index + 1, separator, newChild);
        }
        else
        {
            rightBranch.InsertAt(index + 1 - half, separator, newChild);
        }
        branch.Total = branch.SumOfChildren();
        rightBranch.Total = rightBranch.SumOfChildren();
        return (up, rightBranch);
    }

    /// <summary>Deletes a key that is there, under a node this map owns; mends a child left too small.</summary>
    private void Delete(Node node, string key)
    {
        if (node is Leaf leaf)
        {
            var at = Search(leaf.Keys, leaf.N, key);
            Invariant.Assert(at >= 0, $"deleting '{key}', which the map does not hold");
            leaf.RemoveAt(at);
            return;
        }
        var branch = (Branch)node;
        var index = ChildIndex(branch, key);
        var child = Writable(branch.Children[index]);
        branch.Children[index] = child;
        Delete(child, key);
        branch.Total--;
        if (child.N < Minimum && branch.N > 1)
        {
            Mend(branch, index);
        }
    }

    /// <summary>
    /// Merges a child that fell below the minimum with a neighbour, or evens the two out when together they would not fit
    /// in one node.
    /// </summary>
    private void Mend(Branch parent, int index)
    {
        var leftIndex = index > 0 ? index - 1 : index;
        var left = Writable(parent.Children[leftIndex]);
        var right = Writable(parent.Children[leftIndex + 1]);
        parent.Children[leftIndex] = left;
        parent.Children[leftIndex + 1] = right;
        var separator = parent.Keys[leftIndex]!;
        if (left is Leaf leftLeaf)
        {
            var rightLeaf = (Leaf)right;
            if (leftLeaf.N + rightLeaf.N <= _capacity)
            {
                MoveItems(rightLeaf, 0, leftLeaf, leftLeaf.N, rightLeaf.N);
                parent.RemoveAt(leftIndex + 1);
                return;
            }
            var target = (leftLeaf.N + rightLeaf.N) / 2;
            if (leftLeaf.N < target)
            {
                var count = target - leftLeaf.N;
                MoveItems(rightLeaf, 0, leftLeaf, leftLeaf.N, count);
            }
            else
            {
                var count = leftLeaf.N - target;
                MoveItems(leftLeaf, target, rightLeaf, 0, count);
            }
            parent.Keys[leftIndex] = rightLeaf.Keys[0];
            return;
        }
        var leftBranch = (Branch)left;
        var rightBranch = (Branch)right;
        // Both branches' children in a row, with the parent's separator between them; then cut it again (or not at all).
        var children = new Node[leftBranch.N + rightBranch.N];
        var keys = new string[children.Length - 1];
        Array.Copy(leftBranch.Children, children, leftBranch.N);
        Array.Copy(rightBranch.Children, 0, children, leftBranch.N, rightBranch.N);
        Array.Copy(leftBranch.Keys, keys, leftBranch.N - 1);
        keys[leftBranch.N - 1] = separator;
        Array.Copy(rightBranch.Keys, 0, keys, leftBranch.N, rightBranch.N - 1);
        if (children.Length <= _capacity)
        {
            leftBranch.Fill(children, keys, 0, children.Length);
            parent.RemoveAt(leftIndex + 1);
            return;
        }
        var cut = children.Length / 2;
        leftBranch.Fill(children, keys, 0, cut);
        rightBranch.Fill(children, keys, cut, children.Length - cut);
        parent.Keys[leftIndex] = keys[cut - 1];
    }

    /// <summary>
    /// Makes room in a full leaf by moving some of its items to a neighbour that has room (half of that room), rather than
    /// splitting it: keys written in no particular order would otherwise leave the leaves about half full, and here the
    /// leaves are most of the store's memory beside the keys and values. False if neither neighbour has room.
    /// </summary>
    private bool Spill(Branch parent, int index, Leaf full)
    {
        if (index > 0 && parent.Children[index - 1].N <= _capacity - 2)
        {
            var left = (Leaf)Writable(parent.Children[index - 1]);
            parent.Children[index - 1] = left;
            MoveItems(full, 0, left, left.N, (_capacity - left.N) / 2);
            parent.Keys[index - 1] = full.Keys[0];
            return true;
        }
        if (index + 1 < parent.N && parent.Children[index + 1].N <= _capacity - 2)
        {
            var right = (Leaf)Writable(parent.Children[index + 1]);
            parent.Children[index + 1] = right;
            var count = (_capacity - right.N) / 2;
            MoveItems(full, full.N - count, right, 0, count);
            parent.Keys[index] = right.Keys[0];
            return true;
        }
        return false;
    }

    /// <summary>
    /// Where a full node splits for an item or child that goes at <paramref name="at"/>: in half, but past the middle when
    /// it goes at the end, as keys written in increasing order do (etcd's revisions, a fill of bench-0 … bench-N): the
    /// left keeps all but the minimum, so such a run leaves its nodes three quarters full rather than half.
    /// </summary>
    private int SplitAt(int at, int n) => at == n ? n - Minimum : n / 2;

    /// <summary>Moves <paramref name="count"/> items from one leaf at a position to another at a position (both owned).</summary>
    private static void MoveItems(Leaf from, int fromAt, Leaf to, int toAt, int count)
    {
        Array.Copy(to.Keys, toAt, to.Keys, toAt + count, to.N - toAt);
        Array.Copy(to.Values, toAt, to.Values, toAt + count, to.N - toAt);
        Array.Copy(from.Keys, fromAt, to.Keys, toAt, count);
        Array.Copy(from.Values, fromAt, to.Values, toAt, count);
        to.N += count;
        Array.Copy(from.Keys, fromAt + count, from.Keys, fromAt, from.N - fromAt - count);
        Array.Copy(from.Values, fromAt + count, from.Values, fromAt, from.N - fromAt - count);
        Array.Clear(from.Keys, from.N - count, count);
        Array.Clear(from.Values, from.N - count, count);
        from.N -= count;
    }

    private Node Writable(Node node)
    {
        if (ReferenceEquals(node.Owner, _owner))
        {
            return node;
        }
        return node.CopyFor(_owner);
    }

    /// <summary>The child of a branch whose keys include <paramref name="key"/>'s place: the number of separators at or below it.</summary>
    private static int ChildIndex(Branch branch, string key)
    {
        var at = Search(branch.Keys, branch.N - 1, key);
        return at >= 0 ? at + 1 : ~at;
    }

    /// <summary>Binary search of the first <paramref name="n"/> keys: the position of the key, or the complement of where it would go.</summary>
    private static int Search(string?[] keys, int n, string key)
    {
        var low = 0;
        var high = n - 1;
        while (low <= high)
        {
            var middle = (int)((uint)(low + high) >> 1);
            var order = string.CompareOrdinal(keys[middle], key);
            if (order == 0)
            {
                return middle;
            }
            if (order < 0)
            {
                low = middle + 1;
            }
            else
            {
                high = middle - 1;
            }
        }
        return ~low;
    }

    private abstract class Node(object owner, int capacity)
    {
        public object Owner { get; } = owner;

        // A leaf's keys; a branch's separators (N - 1 of them: Keys[i] is at or below every key of child i + 1 and above
        // every key of child i).
        public string?[] Keys { get; } = new string?[capacity];

        /// <summary>A leaf's items, a branch's children.</summary>
        public int N { get; set; }

        /// <summary>The items under this node.</summary>
        public abstract int Count { get; }

        public abstract Node CopyFor(object owner);
    }

    private sealed class Leaf(object owner, int capacity) : Node(owner, capacity)
    {
        public TValue[] Values { get; } = new TValue[capacity];

        public override int Count => N;

        public override Node CopyFor(object owner)
        {
            var copy = new Leaf(owner, Keys.Length) { N = N };
            Array.Copy(Keys, copy.Keys, N);
            Array.Copy(Values, copy.Values, N);
            return copy;
        }

        public void InsertAt(int at, string key, TValue value)
        {
            Array.Copy(Keys, at, Keys, at + 1, N - at);
            Array.Copy(Values, at, Values, at + 1, N - at);
            Keys[at] = key;
            Values[at] = value;
            N++;
        }

        public void RemoveAt(int at)
        {
            Array.Copy(Keys, at + 1, Keys, at, N - at - 1);
            Array.Copy(Values, at + 1, Values, at, N - at - 1);
            N--;
            Keys[N] = null;
            Values[N] = default!;
        }
    }

    private sealed class Branch(object owner, int capacity) : Node(owner, capacity)
    {
        public Node[] Children { get; } = new Node[capacity];

        public int Total { get; set; }

        public override int Count => Total;

        public override Node CopyFor(object owner)
        {
            var copy = new Branch(owner, Keys.Length) { N = N, Total = Total };
            Array.Copy(Keys, copy.Keys, N - 1);
            Array.Copy(Children, copy.Children, N);
            return copy;
        }

        /// <summary>Puts a child at a position, with the separator below it (at <paramref name="at"/> - 1).</summary>
        public void InsertAt(int at, string separator, Node child)
        {
            Array.Copy(Children, at, Children, at + 1, N - at);
            Array.Copy(Keys, at - 1, Keys, at, N - at);
            Children[at] = child;
            Keys[at - 1] = separator;
            N++;
        }

        /// <summary>Takes out a child and the separator below it.</summary>
        public void RemoveAt(int at)
        {
            Array.Copy(Children, at + 1, Children, at, N - at - 1);
            Array.Copy(Keys, at, Keys, at - 1, N - at - 1);
            N--;
            Children[N] = null!;
            Keys[N - 1] = null;
        }

        /// <summary>Replaces the children with <paramref name="count"/> of a row's, from <paramref name="start"/>, and the separators between them.</summary>
        public void Fill(Node[] children, string[] keys, int start, int count)
        {
            Array.Clear(Children);
            Array.Clear(Keys);
            Array.Copy(children, start, Children, 0, count);
            Array.Copy(keys, start, Keys, 0, count - 1);
            N = count;
            Total = SumOfChildren();
        }

        public int SumOfChildren()
        {
            var total = 0;
            for (var i = 0; i < N; i++)
            {
                total += Children[i].Count;
            }
            return total;
        }
    }
}
