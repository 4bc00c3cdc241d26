using System.CommandLine;
using System.Globalization;
using RaftKv.Client;
using RaftKv.Contracts;
using Spectre.Console;

namespace RaftKv.Cli;

/// <summary>raft-cli lease grant|keepalive|revoke|info: leases from a terminal, as etcdctl has them.</summary>
internal static class LeaseCommands
{
    public static Command Lease(CliContext context)
    {
        var lease = new Command("lease", """
            Leases: keys written with one (raft-cli set KEY VALUE --lease ID) are deleted when it is revoked or expires,
            which it does a TTL after it was granted or last kept alive. Exit code 9 if the lease does not exist (never
            granted, revoked, or expired).

            Examples:
              raft-cli lease grant 10
              raft-cli set services/web 10.0.0.1 --lease 7
              raft-cli lease keepalive 7
              raft-cli lease info 7
              raft-cli lease revoke 7
            """);
        lease.Subcommands.Add(Grant(context));
        lease.Subcommands.Add(KeepAlive(context));
        lease.Subcommands.Add(Revoke(context));
        lease.Subcommands.Add(Info(context));
        return lease;
    }

    /// <summary>A lease id from the command line: a whole number from 1.</summary>
    public static ulong ParseId(string? text, string what) =>
        ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id > 0
            ? id
            : throw new UsageException($"{what}: '{text}' is not a lease id (a whole number from 1)");

    /// <summary>The one line (stderr) and exit code of a lease that does not exist.</summary>
    public static int NotFound(ulong id)
    {
        Console.Error.WriteLine($"raft-cli: lease {id} not found: never granted, revoked, or expired");
        return ExitCodes.LeaseNotFound;
    }

    private static Command Grant(CliContext context)
    {
        var ttl = new Argument<string>("ttl") { Description = "Seconds the lease lives unless kept alive (from 1)" };
        var command = new Command("grant", """
            Grant a lease; prints its id. The grant carries a session, so the retries raft-cli makes grant one lease.

            Examples:
              raft-cli lease grant 10
              raft-cli lease grant 30 --output json
            """);
        command.Arguments.Add(ttl);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            var text = result.GetValue(ttl);
            if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) || seconds < 1)
            {
                throw new UsageException($"lease grant: '{text}' is not a TTL (whole seconds from 1)");
            }
            using var client = context.Client(result);
            var lease = await client.GrantLeaseAsync(seconds, cancellationToken).ConfigureAwait(false);
            Print(context, result, lease, $"OK: lease {lease.Id} granted with TTL {lease.Ttl} s at index {lease.Index} (leader {Markup.Escape(lease.Leader ?? "?")})");
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command KeepAlive(CliContext context)
    {
        var id = new Argument<string>("id") { Description = "The lease id" };
        var once = new Option<bool>("--once") { Description = "One keepalive, then exit" };
        var command = new Command("keepalive", """
            Keep a lease alive: a keepalive every TTL/3, one line each ("lease 7 kept alive, TTL 10 s"; with --output json,
            one JSON object per line), until Ctrl+C (the lease then expires a TTL after the last keepalive) or until the
            lease is lost: exit code 9 if the cluster says it is gone, 5 if no keepalive succeeded for a whole TTL.

            Examples:
              raft-cli lease keepalive 7
              raft-cli lease keepalive 7 --once
            """);
        command.Arguments.Add(id);
        command.Options.Add(once);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            var lease = ParseId(result.GetValue(id), "lease keepalive");
            using var client = context.Client(result);
            if (result.GetValue(once))
            {
                var kept = await client.KeepAliveLeaseAsync(lease, cancellationToken).ConfigureAwait(false);
                if (kept is null)
                {
                    return NotFound(lease);
                }
                Print(context, result, kept, $"OK: lease {kept.Id} kept alive, TTL {kept.Ttl} s");
                return ExitCodes.Ok;
            }
            var options = new LeaseKeeperOptions
            {
                RevokeOnDispose = false, // as etcdctl: stopping the keepalives leaves the lease to expire
                KeptAlive = kept =>
                {
                    if (context.Json(result))
                    {
                        CliContext.WriteJson(kept, ContractsJson.Default.LeaseResponse);
                    }
                    else
                    {
                        Console.Out.WriteLine($"lease {kept.Id} kept alive, TTL {kept.Ttl} s");
                    }
                    Console.Out.Flush();
                },
            };
            var keeper = await client.KeepExistingLeaseAsync(lease, options, cancellationToken).ConfigureAwait(false);
            if (keeper is null)
            {
                return NotFound(lease);
            }
            await using (keeper.ConfigureAwait(false))
            {
                LeaseLoss loss;
                try
                {
                    loss = await keeper.WhenLost.WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
                {
                    return ExitCodes.Ok; // Ctrl+C
                }
                if (loss.Reason == LeaseLossReason.NotFound)
                {
                    return NotFound(lease);
                }
                Console.Error.WriteLine("raft-cli: lease lost: " + loss.Detail);
                return ExitCodes.Unavailable;
            }
        }));
        return command;
    }

    private static Command Revoke(CliContext context)
    {
        var id = new Argument<string>("id") { Description = "The lease id" };
        var command = new Command("revoke", """
            Revoke a lease now: every key written with it is deleted. Exit code 9 if there is no such lease.

            Example:
              raft-cli lease revoke 7
            """);
        command.Arguments.Add(id);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            var lease = ParseId(result.GetValue(id), "lease revoke");
            using var client = context.Client(result);
            var revoked = await client.RevokeLeaseAsync(lease, cancellationToken).ConfigureAwait(false);
            if (revoked is null)
            {
                return NotFound(lease);
            }
            var keys = revoked.Deleted == 1 ? "1 key" : $"{revoked.Deleted ?? 0} keys";
            Print(context, result, revoked, $"OK: lease {revoked.Id} revoked at index {revoked.Index}, {keys} deleted");
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Info(CliContext context)
    {
        var id = new Argument<string>("id") { Description = "The lease id" };
        var command = new Command("info", """
            A lease's TTL, the seconds it has left by the leader's clock, and its keys (as etcdctl lease timetolive --keys):
            a line "lease 7: TTL 10 s, 8.4 s remaining, 2 keys", then one key a line. Exit code 9 if there is no such lease.

            Examples:
              raft-cli lease info 7
              raft-cli lease info 7 --output json
            """);
        command.Arguments.Add(id);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            var lease = ParseId(result.GetValue(id), "lease info");
            using var client = context.Client(result);
            var info = await client.GetLeaseAsync(lease, cancellationToken).ConfigureAwait(false);
            if (info is null)
            {
                return NotFound(lease);
            }
            if (context.Json(result))
            {
                CliContext.WriteJson(info, ContractsJson.Default.LeaseInfoResponse);
                return ExitCodes.Ok;
            }
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"lease {info.Id}: TTL {info.Ttl} s, {info.Remaining:0.0} s remaining, {(info.KeyCount == 1 ? "1 key" : $"{info.KeyCount} keys")}"));
            foreach (var key in info.Keys)
            {
                Console.Out.WriteLine(key.Replace("\n", "\\n", StringComparison.Ordinal));
            }
            if (info.Keys.Count < info.KeyCount)
            {
                Console.Error.WriteLine($"raft-cli: {info.Keys.Count} of {info.KeyCount} keys shown");
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static void Print(CliContext context, ParseResult result, LeaseResponse lease, string human)
    {
        if (context.Json(result))
        {
            CliContext.WriteJson(lease, ContractsJson.Default.LeaseResponse);
        }
        else
        {
            AnsiConsole.MarkupLine(human);
        }
    }
}
