using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using RaftKv.Cli;
using RaftKv.Client;

// raft-cli: every RaftKv operation from a terminal. See --help, and ExitCodes for what the exit status means.
var endpoints = new Option<string>("--endpoints", "-e")
{
    Description = "Comma-separated node URLs (default: $RAFTKV_ENDPOINTS, else http://127.0.0.1:8080)",
    Recursive = true,
    DefaultValueFactory = _ => Environment.GetEnvironmentVariable("RAFTKV_ENDPOINTS") ?? "http://127.0.0.1:8080",
};
var timeout = new Option<double>("--timeout")
{
    Description = "Seconds an operation may take, retries included",
    Recursive = true,
    DefaultValueFactory = _ => 15,
};
var output = new Option<string>("--output", "-o")
{
    Description = "table (for people) or json (for machines)",
    Recursive = true,
    DefaultValueFactory = _ => "table",
};
output.AcceptOnlyFromAmong("table", "json");
var cacert = new Option<FileInfo?>("--cacert")
{
    Description = "The cluster CA (PEM) that https:// endpoints' certificates must chain to (default: $RAFTKV_CACERT)",
    Recursive = true,
    DefaultValueFactory = _ => Environment.GetEnvironmentVariable("RAFTKV_CACERT") is { Length: > 0 } path ? new FileInfo(path) : null,
};
var token = new Option<string?>("--token")
{
    Description = "Bearer token for a cluster with client tokens on (default: $RAFTKV_TOKEN); never printed",
    Recursive = true,
    DefaultValueFactory = _ => Environment.GetEnvironmentVariable("RAFTKV_TOKEN"),
};
var http2 = new Option<bool>("--http2")
{
    Description = "Speak HTTP/2 (one multiplexed connection per node): to http:// endpoints that are nodes' ListenHttp2 listeners, or https:// ones (default: $RAFTKV_HTTP2=1)",
    Recursive = true,
    DefaultValueFactory = _ => Environment.GetEnvironmentVariable("RAFTKV_HTTP2") == "1",
};

var root = new RootCommand($"""
    raft-cli: talk to a RaftKv cluster.

    Examples:
      raft-cli set mykey myvalue
      raft-cli get mykey
      raft-cli lease grant 10
      raft-cli --endpoints http://127.0.0.1:8081,http://127.0.0.1:8082 status
      raft-cli benchmark --operations 1000
      raft-cli member list
      raft-cli leader transfer --to n2

    {ExitCodes.Help}
    """);
root.Options.Add(endpoints);
root.Options.Add(timeout);
root.Options.Add(output);
root.Options.Add(token);
root.Options.Add(cacert);
root.Options.Add(http2);

var context = new CliContext(endpoints, timeout, output, token, cacert, http2);
root.Subcommands.Add(KvCommands.Set(context));
root.Subcommands.Add(KvCommands.Get(context));
root.Subcommands.Add(KvCommands.List(context));
root.Subcommands.Add(KvCommands.Txn(context));
root.Subcommands.Add(KvCommands.Watch(context));
root.Subcommands.Add(KvCommands.Delete(context));
root.Subcommands.Add(KvCommands.Cas(context));
root.Subcommands.Add(LeaseCommands.Lease(context));
root.Subcommands.Add(ClusterCommands.Status(context));
root.Subcommands.Add(ClusterCommands.Health(context));
root.Subcommands.Add(MemberCommands.Member(context));
root.Subcommands.Add(MemberCommands.Leader(context));
root.Subcommands.Add(SnapshotCommands.Create(context));
root.Subcommands.Add(TokenCommands.Create(context));
root.Subcommands.Add(CertCommands.Create());
root.Subcommands.Add(BenchmarkCommand.Create(context));

var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors)
    {
        Console.Error.WriteLine("raft-cli: " + error.Message);
    }
    Console.Error.WriteLine("raft-cli: see raft-cli --help");
    return ExitCodes.Usage;
}
try
{
    return await parsed.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false }).ConfigureAwait(false);
}
catch (UsageException error)
{
    Console.Error.WriteLine("raft-cli: " + error.Message);
    return ExitCodes.Usage;
}
catch (Exception error) when (error is not OutOfMemoryException)
{
    // Never a stack trace: one line saying what went wrong.
    Console.Error.WriteLine("raft-cli: " + error.Message);
    return ExitCodes.Failed;
}

namespace RaftKv.Cli
{
    /// <summary>The global options every command reads, and how a command turns them into a client.</summary>
    internal sealed class CliContext(Option<string> endpoints, Option<double> timeout, Option<string> output, Option<string?> token, Option<FileInfo?> cacert, Option<bool> http2)
    {
        public bool Json(ParseResult result) => result.GetValue(output) == "json";

        public IReadOnlyList<Uri> Endpoints(ParseResult result)
        {
            var text = result.GetValue(endpoints) ?? "";
            var list = new List<Uri>();
            foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!Uri.TryCreate(part, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps) || uri.Host.Length == 0)
                {
                    throw new UsageException($"--endpoints: '{part}' is not an http:// URL (for example http://127.0.0.1:8080)");
                }
                list.Add(uri);
            }
            return list.Count > 0 ? list : throw new UsageException("--endpoints: no endpoint given");
        }

        public RaftKvClient Client(ParseResult result, HttpMessageHandler? handler = null, string? clientId = null, ulong sequence = 1) =>
            new(ClientOptions(result) with { ClientId = clientId, NextSequence = sequence }, handler);

        /// <summary>Endpoints and timeouts from the command line, checked once.</summary>
        public RaftKvClientOptions ClientOptions(ParseResult result)
        {
            var seconds = result.GetValue(timeout);
            if (seconds <= 0 || double.IsNaN(seconds))
            {
                throw new UsageException("--timeout: must be a positive number of seconds");
            }
            return new RaftKvClientOptions
            {
                Endpoints = Endpoints(result),
                Token = string.IsNullOrEmpty(result.GetValue(token)) ? null : result.GetValue(token),
                TrustedCa = result.GetValue(cacert) is { } ca
                    ? (ca.Exists ? RaftKv.Contracts.TlsTrust.LoadCa(ca.FullName) : throw new UsageException($"--cacert: {ca.FullName} does not exist"))
                    : null,
                Timeout = TimeSpan.FromSeconds(seconds),
                AttemptTimeout = TimeSpan.FromSeconds(Math.Min(seconds, 7)),
                Http2 = result.GetValue(http2),
            };
        }

        public static void WriteJson<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type) =>
            Console.Out.WriteLine(JsonSerializer.Serialize(value, type));

        /// <summary>Runs an operation, turning the client's exceptions into one line and an exit code.</summary>
        public static async Task<int> GuardAsync(Func<Task<int>> operation)
        {
            try
            {
                return await operation().ConfigureAwait(false);
            }
            catch (ClusterUnavailableException error)
            {
                Console.Error.WriteLine("raft-cli: cluster unavailable: " + error.Message);
                return ExitCodes.Unavailable;
            }
            catch (OutcomeUnknownException error)
            {
                Console.Error.WriteLine("raft-cli: outcome unknown: " + error.Message);
                return ExitCodes.OutcomeUnknown;
            }
            catch (InvalidRequestException error)
            {
                Console.Error.WriteLine($"raft-cli: rejected ({error.Status}): {error.Message}");
                return ExitCodes.Rejected;
            }
            catch (ConflictException error)
            {
                Console.Error.WriteLine("raft-cli: refused for now: " + error.Message);
                return ExitCodes.Conflict;
            }
            catch (UsageException error)
            {
                Console.Error.WriteLine("raft-cli: " + error.Message);
                return ExitCodes.Usage;
            }
            catch (Exception error) when (error is IOException or UnauthorizedAccessException or HttpRequestException or ArgumentException)
            {
                Console.Error.WriteLine("raft-cli: " + error.Message);
                return ExitCodes.Failed;
            }
        }

        /// <summary>--client-id/--seq: a script that retries by itself resumes its session, so the cluster applies the write once.</summary>
        public static (Option<string?> ClientId, Option<ulong?> Sequence) SessionOptions() =>
            (new Option<string?>("--client-id") { Description = "Session id for this write (with --seq: a retry of the same write is applied once)" },
             new Option<ulong?>("--seq") { Description = "Sequence number of this write in the session (1, 2, 3…); use with --client-id" });

        public RaftKvClient SessionClient(ParseResult result, Option<string?> clientId, Option<ulong?> sequence)
        {
            var id = result.GetValue(clientId);
            var seq = result.GetValue(sequence);
            if ((id is null) != (seq is null))
            {
                throw new UsageException("--client-id and --seq go together");
            }
            if (seq == 0)
            {
                throw new UsageException("--seq: sequence numbers start at 1");
            }
            return Client(result, clientId: id, sequence: seq ?? 1);
        }

        public static string Number(ulong value) => value.ToString("N0", CultureInfo.InvariantCulture);

    }

    /// <summary>A mistake in how raft-cli was called.</summary>
    internal sealed class UsageException(string message) : Exception(message);
}
