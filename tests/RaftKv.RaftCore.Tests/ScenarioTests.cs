using System.Runtime.CompilerServices;
using RaftKv.Testing.Scenarios;

namespace RaftKv.RaftCore.Tests;

/// <summary>
/// Runs every script in Scenarios/ and compares the transcript. With RAFTKV_REWRITE_SCENARIOS=1 the scripts in the
/// source tree are rewritten with what the code now prints: review that diff before committing it. "check" lines in a
/// script assert facts directly and fail whatever the transcript says.
/// </summary>
public sealed class ScenarioTests
{
    public static TheoryData<string> Scripts()
    {
        var data = new TheoryData<string>();
        foreach (var path in Directory.GetFiles(Path.Combine(AppContext.BaseDirectory, "Scenarios"), "*.txt").Order(StringComparer.Ordinal))
        {
            data.Add(Path.GetFileName(path));
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Scripts))]
    public void Scenario_prints_the_expected_transcript(string name)
    {
        var script = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Scenarios", name));

        var actual = ScenarioRunner.Run(script);

        if (Environment.GetEnvironmentVariable("RAFTKV_REWRITE_SCENARIOS") == "1")
        {
            File.WriteAllText(Path.Combine(SourceDirectory(), "Scenarios", name), actual);
            return;
        }
        actual.Should().Be(script, "the transcript of {0} changed; rerun with RAFTKV_REWRITE_SCENARIOS=1 and review the diff", name);
    }

    [Fact]
    public void A_failing_check_fails_the_scenario_whatever_the_transcript()
    {
        const string script = "add-nodes 3\n----\nok\n\ncheck 1 role=Leader\n----\nok\n";

        var run = () => ScenarioRunner.Run(script);

        run.Should().Throw<ScenarioCheckFailedException>().WithMessage("*n1 role is Follower, expected Leader*");
    }

    private static string SourceDirectory([CallerFilePath] string path = "") => Path.GetDirectoryName(path)!;
}
