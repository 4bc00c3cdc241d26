using System.CommandLine;
using System.Text.Json.Serialization;
using RaftKv.Client;
using RaftKv.Contracts;
using Spectre.Console;

namespace RaftKv.Cli;

internal static class KvCommands
{
    public static Command Set(CliContext context)
    {
        var key = new Argument<string>("key") { Description = "The key" };
        var value = new Argument<string?>("value") { Description = "The value (or use --value-file)", Arity = ArgumentArity.ZeroOrOne };
        var file = new Option<FileInfo?>("--value-file", "-f") { Description = "Read the value from this file (UTF-8 text)" };
        var lease = new Option<string?>("--lease") { Description = "Write the key with this lease: it is deleted when the lease is revoked or expires" };
        var command = new Command("set", """
            Write a value. The write carries a session, so the retries raft-cli makes apply it at most once. A script that
            retries by itself passes the same --client-id and --seq again. With --lease, exit code 9 (and nothing
            written) if the lease does not exist.

            Examples:
              raft-cli set mykey myvalue
              raft-cli set config --value-file settings.json
              raft-cli set mykey myvalue --client-id deploy-7 --seq 3
              raft-cli set services/web 10.0.0.1 --lease 7
            """);
        command.Arguments.Add(key);
        command.Arguments.Add(value);
        command.Options.Add(file);
        command.Options.Add(lease);
        var (clientId, sequence) = CliContext.SessionOptions();
        command.Options.Add(clientId);
        command.Options.Add(sequence);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            var text = result.GetValue(value);
            var path = result.GetValue(file);
            if ((text is null) == (path is null))
            {
                throw new UsageException("set: give a value or --value-file, not both and not neither");
            }
            var leaseId = result.GetValue(lease) is { } leaseText ? LeaseCommands.ParseId(leaseText, "--lease") : (ulong?)null;
            if (path is not null)
            {
                if (!path.Exists)
                {
                    throw new UsageException($"--value-file: {path.FullName} does not exist");
                }
                text = await File.ReadAllTextAsync(path.FullName, cancellationToken).ConfigureAwait(false);
            }
            using var client = context.SessionClient(result, clientId, sequence);
            var response = leaseId is { } id
                ? await client.SetAsync(result.GetValue(key)!, text!, id, cancellationToken).ConfigureAwait(false)
                : await client.SetAsync(result.GetValue(key)!, text!, cancellationToken).ConfigureAwait(false);
            if (response.LeaseNotFound)
            {
                if (context.Json(result))
                {
                    CliContext.WriteJson(response, CliJson.Default.KvResponse);
                }
                return LeaseCommands.NotFound(leaseId!.Value);
            }
            var with = leaseId is { } held ? $" with lease {held}" : "";
            return Print(context, result, response, $"OK: {Markup.Escape(result.GetValue(key)!)} written at index {response.Index}{with} (leader {response.Leader})");
        }));
        return command;
    }

    public static Command Get(CliContext context)
    {
        var key = new Argument<string>("key") { Description = "The key" };
        var consistency = new Option<string>("--consistency", "-c")
        {
            Description = "linearizable (through the leader; the default) or stale (whatever the node asked has applied)",
            DefaultValueFactory = _ => "linearizable",
        };
        consistency.AcceptOnlyFromAmong("linearizable", "stale");
        var command = new Command("get", """
            Read a value; prints it alone, so that scripts can use it. Exit code 3 if the key does not exist.

            Examples:
              raft-cli get mykey
              raft-cli get mykey --consistency stale --output json
            """);
        command.Arguments.Add(key);
        command.Options.Add(consistency);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            using var client = context.Client(result);
            var mode = result.GetValue(consistency) == "stale" ? Consistency.Stale : Consistency.Linearizable;
            var response = await client.GetAsync(result.GetValue(key)!, mode, cancellationToken).ConfigureAwait(false);
            if (context.Json(result))
            {
                CliContext.WriteJson(response, CliJson.Default.KvResponse);
            }
            else if (response.Found)
            {
                Console.Out.WriteLine(response.Value);
            }
            else
            {
                Console.Error.WriteLine($"raft-cli: {result.GetValue(key)}: not found");
            }
            return response.Found ? ExitCodes.Ok : ExitCodes.NotFound;
        }));
        return command;
    }

    public static Command List(CliContext context)
    {
        var prefix = new Argument<string>("prefix") { Description = "List the keys that start with this (\"\" for every key)" };
        var limit = new Option<int>("--limit", "-n") { Description = "At most this many keys (1 to 1000 per page; with --all, the page size)", DefaultValueFactory = _ => 100 };
        var all = new Option<bool>("--all") { Description = "Every key with the prefix, page after page" };
        var count = new Option<bool>("--count") { Description = "Print only how many keys have the prefix" };
        var consistency = new Option<string>("--consistency", "-c")
        {
            Description = "linearizable (the default) or stale",
            DefaultValueFactory = _ => "linearizable",
        };
        consistency.AcceptOnlyFromAmong("linearizable", "stale");
        var command = new Command("list", """
            List keys by prefix, in key order: one "key<TAB>value" line each (values on one line, newlines as \n).
            A listing cut short by --limit says so on stderr. Exit code 3 if no key has the prefix.

            Examples:
              raft-cli list services/
              raft-cli list services/ --all --output json
              raft-cli list "" --count
            """);
        command.Arguments.Add(prefix);
        command.Options.Add(limit);
        command.Options.Add(all);
        command.Options.Add(count);
        command.Options.Add(consistency);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            if (result.GetValue(limit) is < 1 or > 1_000)
            {
                throw new UsageException($"--limit: {result.GetValue(limit)} is not from 1 to 1000");
            }
            using var client = context.Client(result);
            var mode = result.GetValue(consistency) == "stale" ? Consistency.Stale : Consistency.Linearizable;
            var name = result.GetValue(prefix)!;
            if (result.GetValue(count))
            {
                var counted = await client.ListAsync(name, 1, null, countOnly: true, mode, cancellationToken).ConfigureAwait(false);
                if (context.Json(result))
                {
                    CliContext.WriteJson(counted, CliJson.Default.KvListResponse);
                }
                else
                {
                    Console.Out.WriteLine(counted.Count);
                }
                return counted.Count > 0 ? ExitCodes.Ok : ExitCodes.NotFound;
            }
            KvListResponse page;
            if (result.GetValue(all))
            {
                var items = new List<KvListItem>();
                await foreach (var item in client.ListAllAsync(name, result.GetValue(limit), mode, cancellationToken).ConfigureAwait(false))
                {
                    items.Add(item);
                }
                page = new KvListResponse(items, items.Count, false, null, 0, 0, null);
            }
            else
            {
                page = await client.ListAsync(name, result.GetValue(limit), null, countOnly: false, mode, cancellationToken).ConfigureAwait(false);
            }
            if (context.Json(result))
            {
                CliContext.WriteJson(page, CliJson.Default.KvListResponse);
            }
            else
            {
                foreach (var item in page.Items)
                {
                    Console.Out.WriteLine(item.Key + "\t" + item.Value.Replace("\n", "\\n", StringComparison.Ordinal));
                }
                if (page.More)
                {
                    Console.Error.WriteLine($"raft-cli: {page.Items.Count} of {page.Count} keys shown; more after '{page.Next}' (--all lists every one)");
                }
            }
            return page.Items.Count > 0 ? ExitCodes.Ok : ExitCodes.NotFound;
        }));
        return command;
    }

    public static Command Watch(CliContext context)
    {
        var key = new Argument<string>("key") { Description = "The key to watch (with --prefix: the prefix)" };
        var prefix = new Option<bool>("--prefix") { Description = "Watch every key that starts with KEY" };
        var from = new Option<ulong?>("--from-revision") { Description = "Start at this revision (default: from now)" };
        var previous = new Option<bool>("--prev-value") { Description = "Also print the value before each change" };
        var count = new Option<int?>("--count") { Description = "Stop after this many changes (default: until Ctrl+C)" };
        var command = new Command("watch", """
            Print every change of a key or prefix as it happens: "PUT key value" or "DELETE key", one line each (with
            --output json: one JSON object per line). A broken stream is resumed on another endpoint after the last change
            printed, so nothing is missed or printed twice. Exit code 8 if the nodes no longer keep the start revision.

            Examples:
              raft-cli watch services/ --prefix
              raft-cli watch config --from-revision 120 --prev-value --count 5
            """);
        command.Arguments.Add(key);
        command.Options.Add(prefix);
        command.Options.Add(from);
        command.Options.Add(previous);
        command.Options.Add(count);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            if (result.GetValue(count) is < 1)
            {
                throw new UsageException("--count: at least 1");
            }
            using var client = context.Client(result);
            var seen = 0;
            try
            {
                await foreach (var change in client.WatchAsync(result.GetValue(key)!, result.GetValue(prefix), result.GetValue(from), result.GetValue(previous),
                    cancellationToken).ConfigureAwait(false))
                {
                    if (context.Json(result))
                    {
                        CliContext.WriteJson(change, CliJson.Default.WatchChange);
                    }
                    else
                    {
                        var before = change.PrevValue is null ? "" : $" (was {change.PrevValue})";
                        Console.Out.WriteLine(change.Type == "PUT" ? $"PUT {change.Key} {change.Value}{before} @{change.Revision}" : $"DELETE {change.Key}{before} @{change.Revision}");
                    }
                    await Console.Out.FlushAsync(cancellationToken).ConfigureAwait(false);
                    if (++seen == result.GetValue(count))
                    {
                        break;
                    }
                }
            }
            catch (WatchCompactedException error)
            {
                Console.Error.WriteLine("raft-cli: " + error.Message);
                return ExitCodes.Conflict;
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // Ctrl+C.
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    public static Command Txn(CliContext context)
    {
        var file = new Argument<FileInfo?>("file") { Description = "The transaction as JSON (see docs/api.md); - or nothing: standard input", Arity = ArgumentArity.ZeroOrOne };
        var command = new Command("txn", """
            Run a transaction: {"compare":[…],"success":[…],"failure":[…]} (docs/api.md). Prints each operation of the branch
            that ran; exit code 0 if the comparisons held, 4 if not (the failure branch ran), 9 if a PUT of the branch
            that ran names a lease that does not exist ("lease": ID; nothing was written).

            Examples:
              raft-cli txn lock.json
              echo '{"compare":[{"key":"lock","target":"exists","exists":false}],"success":[{"type":"PUT","key":"lock","value":"me"}],"failure":[{"type":"GET","key":"lock"}]}' | raft-cli txn
            """);
        command.Arguments.Add(file);
        var (txnClientId, txnSequence) = CliContext.SessionOptions();
        command.Options.Add(txnClientId);
        command.Options.Add(txnSequence);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            var path = result.GetValue(file);
            string text;
            if (path is null || path.Name == "-")
            {
                text = await Console.In.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
            }
            else if (!path.Exists)
            {
                throw new UsageException($"txn: {path.FullName} does not exist");
            }
            else
            {
                text = await File.ReadAllTextAsync(path.FullName, cancellationToken).ConfigureAwait(false);
            }
            TxnRequest request;
            try
            {
                request = System.Text.Json.JsonSerializer.Deserialize(text, ContractsJson.Strict.TxnRequest)
                    ?? throw new UsageException("txn: the transaction must be a JSON object");
            }
            catch (System.Text.Json.JsonException error)
            {
                throw new UsageException($"txn: not a transaction ({error.Message.Split('\n')[0]})");
            }
            using var client = context.SessionClient(result, txnClientId, txnSequence);
            var response = await client.TxnAsync(request, cancellationToken).ConfigureAwait(false);
            if (response.LeaseNotFound)
            {
                if (context.Json(result))
                {
                    CliContext.WriteJson(response, CliJson.Default.TxnResponse);
                }
                Console.Error.WriteLine("raft-cli: a PUT of the branch that ran names a lease that does not exist (never granted, revoked, or expired); nothing was written");
                return ExitCodes.LeaseNotFound;
            }
            if (context.Json(result))
            {
                CliContext.WriteJson(response, CliJson.Default.TxnResponse);
            }
            else
            {
                Console.Out.WriteLine($"{(response.Succeeded ? "SUCCEEDED" : "FAILED")}: the {(response.Succeeded ? "success" : "failure")} branch ran at index {response.Index}");
                foreach (var op in response.Results)
                {
                    Console.Out.WriteLine(op.Type switch
                    {
                        "GET" => op.Found ? $"GET {op.Key} = {op.Value} (version {op.Version}, created {op.CreateRevision})" : $"GET {op.Key}: not found",
                        "PUT" => $"PUT {op.Key} (version {op.Version}, created {op.CreateRevision})",
                        _ => op.Found ? $"DELETE {op.Key}" : $"DELETE {op.Key}: did not exist",
                    });
                }
            }
            return response.Succeeded ? ExitCodes.Ok : ExitCodes.CasMismatch;
        }));
        return command;
    }

    public static Command Delete(CliContext context)
    {
        var key = new Argument<string>("key") { Description = "The key" };
        var command = new Command("delete", """
            Remove a key (succeeds whether or not it existed; the output says which).

            Example:
              raft-cli delete mykey
            """);
        command.Arguments.Add(key);
        var (deleteClientId, deleteSequence) = CliContext.SessionOptions();
        command.Options.Add(deleteClientId);
        command.Options.Add(deleteSequence);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            using var client = context.SessionClient(result, deleteClientId, deleteSequence);
            var response = await client.DeleteAsync(result.GetValue(key)!, cancellationToken).ConfigureAwait(false);
            var name = Markup.Escape(result.GetValue(key)!);
            return Print(context, result, response, response.Found ? $"OK: {name} deleted at index {response.Index}" : $"OK: {name} did not exist");
        }));
        return command;
    }

    public static Command Cas(CliContext context)
    {
        var key = new Argument<string>("key") { Description = "The key" };
        var expected = new Argument<string>("expected") { Description = "The value the key must hold now (with --version: the version it must have; 0: absent)" };
        var next = new Argument<string>("new") { Description = "The value to write" };
        var byVersion = new Option<bool>("--version") { Description = "Compare EXPECTED with the key's version (the index that last wrote it)" };
        var command = new Command("cas", """
            Compare-and-set: write NEW only if the key holds EXPECTED. Exit code 4, and nothing written, otherwise.

            Examples:
              raft-cli cas counter 41 42
              raft-cli cas lock 0 owner-a --version      (create only if absent)
            """);
        command.Arguments.Add(key);
        command.Arguments.Add(expected);
        command.Arguments.Add(next);
        command.Options.Add(byVersion);
        var (casClientId, casSequence) = CliContext.SessionOptions();
        command.Options.Add(casClientId);
        command.Options.Add(casSequence);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            using var client = context.SessionClient(result, casClientId, casSequence);
            var name = result.GetValue(key)!;
            KvResponse response;
            if (result.GetValue(byVersion))
            {
                if (!ulong.TryParse(result.GetValue(expected), out var version))
                {
                    throw new UsageException($"cas --version: '{result.GetValue(expected)}' is not a version number");
                }
                response = await client.CompareVersionAndSetAsync(name, version, result.GetValue(next)!, cancellationToken).ConfigureAwait(false);
            }
            else
            {
                response = await client.CompareAndSetAsync(name, result.GetValue(expected)!, result.GetValue(next)!, cancellationToken).ConfigureAwait(false);
            }
            if (response.CasMismatch)
            {
                if (context.Json(result))
                {
                    CliContext.WriteJson(response, CliJson.Default.KvResponse);
                }
                else
                {
                    Console.Error.WriteLine(response.Found
                        ? $"raft-cli: cas mismatch: {name} holds '{response.Value}' (version {response.Version}); nothing written"
                        : $"raft-cli: cas mismatch: {name} does not exist; nothing written");
                }
                return ExitCodes.CasMismatch;
            }
            return Print(context, result, response, $"OK: {Markup.Escape(name)} set at index {response.Index}");
        }));
        return command;
    }

    private static int Print(CliContext context, ParseResult result, KvResponse response, string human)
    {
        if (context.Json(result))
        {
            CliContext.WriteJson(response, CliJson.Default.KvResponse);
        }
        else
        {
            AnsiConsole.MarkupLine(human);
        }
        return ExitCodes.Ok;
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = false)]
[JsonSerializable(typeof(KvResponse))]
[JsonSerializable(typeof(KvListResponse))]
[JsonSerializable(typeof(TxnResponse))]
[JsonSerializable(typeof(WatchChange))]
[JsonSerializable(typeof(IReadOnlyList<EndpointStatus>))]
[JsonSerializable(typeof(IReadOnlyList<HealthReport>))]
[JsonSerializable(typeof(BenchmarkReport))]
internal sealed partial class CliJson : JsonSerializerContext;
