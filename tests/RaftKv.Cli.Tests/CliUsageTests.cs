using RaftKv.Testing.Processes;

namespace RaftKv.Cli.Tests;

/// <summary>Bad input: one clear line and the documented exit code, never a stack trace.</summary>
public sealed class CliUsageTests
{
    [Theory]
    [InlineData(2, "Required argument missing", "get")]
    [InlineData(2, "set: give a value or --value-file", "set", "k")]
    [InlineData(2, "--endpoints: 'not-a-url' is not an http:// URL", "--endpoints", "not-a-url", "get", "k")]
    [InlineData(2, "--endpoints: 'ftp://x:1' is not an http:// URL", "--endpoints", "ftp://x:1", "get", "k")]
    [InlineData(2, "--value-file: /definitely/not/here does not exist", "set", "k", "--value-file", "/definitely/not/here")]
    [InlineData(2, "--client-id and --seq go together", "set", "k", "v", "--seq", "3")]
    [InlineData(2, "--timeout: must be a positive number", "--timeout", "0", "get", "k")]
    [InlineData(2, "benchmark: --operations or --duration, not both", "benchmark", "--operations", "5", "--duration", "1")]
    [InlineData(2, "--read-ratio: between 0 and 1", "benchmark", "--read-ratio", "2")]
    [InlineData(2, "'frobnicate'", "benchmark", "--target", "frobnicate")]
    [InlineData(2, "--baseline: the do-nothing endpoint speaks RaftKv's HTTP/1.1, not etcd's gRPC", "benchmark", "--target", "etcd", "--baseline")]
    [InlineData(2, "--connections: only with --target etcd", "benchmark", "--connections", "4")]
    [InlineData(2, "--connections: between 1 and --clients", "benchmark", "--target", "etcd", "--clients", "2", "--connections", "3")]
    [InlineData(2, "--fill: writes only; not with --read-ratio", "benchmark", "--fill", "--read-ratio", "0.5")]
    [InlineData(2, "--fill: writes each key once; not with --operations or --duration", "benchmark", "--fill", "--duration", "3")]
    [InlineData(2, "Unrecognized command or argument 'frobnicate'", "frobnicate")]
    public async Task A_usage_error_is_one_line_and_exit_code_2(int exitCode, string message, params string[] arguments)
    {
        var result = await Cli.RunAsync(arguments);

        result.ExitCode.Should().Be(exitCode, result.ToString());
        result.Error.Should().Contain(message);
        result.Error.Should().NotContain("   at ", "no stack trace");
    }

    [Fact]
    public async Task An_unreachable_cluster_is_exit_code_5()
    {
        var port = FreePorts.Take(1)[0];

        var result = await Cli.RunAsync("--endpoints", $"http://127.0.0.1:{port}", "--timeout", "2", "get", "k");

        result.ExitCode.Should().Be(5, result.ToString());
        result.Error.Should().StartWith("raft-cli: cluster unavailable");
        result.Error.Should().NotContain("   at ");
    }

    [Fact]
    public async Task Help_documents_the_exit_codes_and_examples()
    {
        var help = await Cli.RunAsync("--help");
        var setHelp = await Cli.RunAsync("set", "--help");

        help.ExitCode.Should().Be(0);
        help.Output.Should().Contain("Exit codes:").And.Contain("4  CAS mismatch").And.Contain("raft-cli benchmark --operations 1000");
        setHelp.Output.Should().Contain("Examples:").And.Contain("raft-cli set mykey myvalue");
    }

    [Fact]
    public async Task The_benchmark_finishes_against_the_quick_start_server()
    {
        var ports = FreePorts.Take(2);
        var directory = Path.Combine(Path.GetTempPath(), "raftkv-cli-" + Guid.NewGuid().ToString("N")[..8]);
        await using var server = ServerProcess.Start("n1", ports[0], ports[1], Path.Combine(directory, "data"),
            ["--http", $"http://127.0.0.1:{ports[0]}", "--peer", $"http://127.0.0.1:{ports[1]}", "--data-dir", Path.Combine(directory, "data")]);
        await server.WaitUntilServingAsync(TimeSpan.FromSeconds(30));

        var result = await Cli.RunAsync("--endpoints", $"http://127.0.0.1:{ports[0]}", "benchmark", "--operations", "1000");

        result.ExitCode.Should().Be(0, result.ToString());
        result.Output.Should().Contain("1,000 (1,000 writes, 0 reads)").And.Contain("errors     │ 0");
    }
}
