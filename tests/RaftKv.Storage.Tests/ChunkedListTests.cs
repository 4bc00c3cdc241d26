namespace RaftKv.Storage.Tests;

public sealed class ChunkedListTests
{
    [Fact]
    public void It_behaves_like_a_list_across_chunk_boundaries()
    {
        var list = new ChunkedList<int>();
        var model = new List<int>();
        var random = new Random(3);
        for (var step = 0; step < 20_000; step++)
        {
            switch (random.Next(10))
            {
                case 0 when model.Count > 0:
                    var keep = random.Next(model.Count);
                    list.TruncateTo(keep);
                    model.RemoveRange(keep, model.Count - keep);
                    break;
                case 1 when model.Count > 0:
                    var drop = random.Next(Math.Min(model.Count, 20_000));
                    list.RemovePrefix(drop);
                    model.RemoveRange(0, drop);
                    break;
                default:
                    for (var i = 0; i < random.Next(1, 3_000); i++)
                    {
                        list.Add(step);
                        model.Add(step);
                    }
                    break;
            }
            list.Count.Should().Be(model.Count);
        }
        Enumerable.Range(0, list.Count).Select(i => list[i]).Should().Equal(model);
    }
}
