namespace RaftKv.Architecture.Tests;

/// <summary>
/// Buggify (RaftKv.Node.IBuggify) makes rare paths common, and only the simulator may turn it on: the loop takes one as
/// an optional argument, and every shipped project leaves it out. So no shipped source but the loop's own two files may
/// name it: a host that implemented or passed one would have to.
/// </summary>
public sealed class BuggifyTests
{
    [Fact]
    public void No_shipped_source_but_the_node_loop_names_buggify()
    {
        var repository = ProjectGraph.FindRepository();
        var naming = new[] { "src", "samples" }
            .Select(folder => Path.Combine(repository, folder))
            .Where(Directory.Exists)
            .SelectMany(root => Directory.EnumerateFiles(root, "*.cs", SearchOption.AllDirectories))
            .Select(file => Path.GetRelativePath(repository, file).Replace('\\', '/'))
            .Where(file => !file.Contains("/obj/", StringComparison.Ordinal) && !file.Contains("/bin/", StringComparison.Ordinal))
            .Where(file => File.ReadAllText(Path.Combine(repository, file)).Contains("buggify", StringComparison.OrdinalIgnoreCase))
            .Order(StringComparer.Ordinal);

        naming.Should().Equal(["src/RaftKv.Node/Buggify.cs", "src/RaftKv.Node/RaftLoop.cs"],
            "the loop declares IBuggify and asks it; only the simulator (tests/) implements one and passes it");
    }
}
