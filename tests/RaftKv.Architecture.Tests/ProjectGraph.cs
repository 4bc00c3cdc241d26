using System.Xml.Linq;

namespace RaftKv.Architecture.Tests;

/// <summary>One project as its .csproj declares it: the projects, frameworks and packages it references directly.</summary>
public sealed record ProjectNode(string Name, string Folder, IReadOnlyList<string> Projects, IReadOnlyList<string> Frameworks, IReadOnlyList<string> Packages);

/// <summary>Every project file under src/, samples/, tests/ and bench/, read as text (no build needed).</summary>
public sealed class ProjectGraph
{
    private ProjectGraph(IReadOnlyDictionary<string, ProjectNode> projects) => Projects = projects;

    public IReadOnlyDictionary<string, ProjectNode> Projects { get; }

    public static ProjectGraph Load(string repository)
    {
        var projects = new SortedDictionary<string, ProjectNode>(StringComparer.Ordinal);
        foreach (var folder in new[] { "src", "samples", "tests", "bench" })
        {
            var root = Path.Combine(repository, folder);
            if (!Directory.Exists(root))
            {
                continue;
            }
            foreach (var file in Directory.EnumerateFiles(root, "*.csproj", SearchOption.AllDirectories))
            {
                var name = Path.GetFileNameWithoutExtension(file);
                var xml = XDocument.Load(file);
                string[] Includes(string element) => [.. xml.Descendants(element).Select(e => (string?)e.Attribute("Include")).OfType<string>()];
                projects[name] = new ProjectNode(
                    name,
                    folder,
                    [.. Includes("ProjectReference").Select(p => Path.GetFileNameWithoutExtension(p.Replace('\\', '/'))).Order(StringComparer.Ordinal)],
                    // The Web SDK brings ASP.NET Core without a FrameworkReference of its own.
                    [.. Includes("FrameworkReference")
                        .Concat((string?)xml.Root?.Attribute("Sdk") == "Microsoft.NET.Sdk.Web" ? ["Microsoft.AspNetCore.App"] : [])
                        .Distinct().Order(StringComparer.Ordinal)],
                    [.. Includes("PackageReference").Order(StringComparer.Ordinal)]);
            }
        }
        return new ProjectGraph(projects);
    }

    /// <summary>Every project <paramref name="name"/> reaches through project references, itself excluded.</summary>
    public IReadOnlySet<string> Reachable(string name)
    {
        var seen = new SortedSet<string>(StringComparer.Ordinal);
        var stack = new Stack<string>(Projects[name].Projects);
        while (stack.TryPop(out var next))
        {
            if (seen.Add(next) && Projects.TryGetValue(next, out var node))
            {
                foreach (var reference in node.Projects)
                {
                    stack.Push(reference);
                }
            }
        }
        return seen;
    }

    /// <summary>One line per reference: "RaftKv.Server -> RaftKv.Hosting", frameworks as "-> [Microsoft.AspNetCore.App]".</summary>
    public IEnumerable<string> Lines(Func<ProjectNode, bool> which) =>
        Projects.Values.Where(which).SelectMany(p =>
            p.Projects.Select(r => $"{p.Name} -> {r}").Concat(p.Frameworks.Select(f => $"{p.Name} -> [{f}]")).DefaultIfEmpty($"{p.Name} -> (nothing)"));

    public static string FindRepository()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "RaftKv.sln")))
        {
            directory = directory.Parent;
        }
        return directory?.FullName ?? throw new InvalidOperationException("RaftKv.sln not found above " + AppContext.BaseDirectory);
    }
}
