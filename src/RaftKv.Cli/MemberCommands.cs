using System.CommandLine;
using RaftKv.Contracts;
using Spectre.Console;

namespace RaftKv.Cli;

/// <summary>raft-cli member list|add|promote|remove and raft-cli leader transfer: the /cluster API from a terminal.</summary>
internal static class MemberCommands
{
    public static Command Member(CliContext context)
    {
        var member = new Command("member", """
            List and change the members of the cluster. One change at a time: while one is in flight, the next is refused
            with exit code 8. A new machine joins in two steps: start it with --join (it waits), then add it here.

            Examples:
              raft-cli member list
              raft-cli member add n4 --peer-url http://10.0.0.4:9080 --client-url http://10.0.0.4:8080
              raft-cli member promote n4
              raft-cli member remove n2
            """);
        member.Subcommands.Add(List(context));
        member.Subcommands.Add(Add(context));
        member.Subcommands.Add(Change(context, "promote", "Make a learner a voter, once it has caught up (else exit code 8: try again later)."));
        member.Subcommands.Add(Change(context, "remove", "Remove a member (a voter through a joint configuration; the leader hands over first)."));
        return member;
    }

    public static Command Leader(CliContext context)
    {
        var to = new Option<string?>("--to") { Description = "The voter to hand leadership to (default: the most caught-up voter)" };
        var transfer = new Command("transfer", """
            Hand leadership to another voter, for example before maintenance on the leader's machine.

            Examples:
              raft-cli leader transfer
              raft-cli leader transfer --to n3
            """);
        transfer.Options.Add(to);
        transfer.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            using var client = context.Client(result);
            var leader = await client.TransferLeaderAsync(result.GetValue(to), cancellationToken).ConfigureAwait(false);
            if (context.Json(result))
            {
                CliContext.WriteJson(leader, ContractsJson.Default.LeaderResponse);
            }
            else
            {
                AnsiConsole.MarkupLine($"OK: {Markup.Escape(leader.Leader)} leads in term {leader.Term}");
            }
            return ExitCodes.Ok;
        }));
        var command = new Command("leader", "Leadership: raft-cli leader transfer [--to id]");
        command.Subcommands.Add(transfer);
        return command;
    }

    private static Command List(CliContext context)
    {
        var command = new Command("list", "Every member: id, role (voter, learner, outgoing), peer and client URLs, the leader.");
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            using var client = context.Client(result);
            Print(context, result, await client.MembersAsync(cancellationToken).ConfigureAwait(false));
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Add(CliContext context)
    {
        var id = new Argument<string>("id") { Description = "The new node's id (never one the cluster had before)" };
        var peerUrl = new Option<string>("--peer-url") { Description = "Where the new node listens for peers", Required = true };
        var clientUrl = new Option<string?>("--client-url") { Description = "Where clients reach the new node" };
        var voter = new Option<bool>("--voter") { Description = "Promote it to voter once it has caught up (default: stay a learner)" };
        var command = new Command("add", """
            Add a node as a learner (it receives the log, never votes). Start it first with --join <any member's URL>.
            With --voter it is promoted as soon as it has caught up.

            Example:
              raft-cli member add n4 --peer-url http://10.0.0.4:9080 --client-url http://10.0.0.4:8080 --voter
            """);
        command.Arguments.Add(id);
        command.Options.Add(peerUrl);
        command.Options.Add(clientUrl);
        command.Options.Add(voter);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            var peer = Url("--peer-url", result.GetValue(peerUrl))!;
            var clientAddress = Url("--client-url", result.GetValue(clientUrl));
            using var client = context.Client(result);
            var members = await client.AddMemberAsync(result.GetValue(id)!, peer, clientAddress, learner: !result.GetValue(voter), cancellationToken).ConfigureAwait(false);
            Print(context, result, members);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Command Change(CliContext context, string name, string description)
    {
        var id = new Argument<string>("id") { Description = "The member's id" };
        var command = new Command(name, description);
        command.Arguments.Add(id);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            using var client = context.Client(result);
            var members = name == "promote"
                ? await client.PromoteMemberAsync(result.GetValue(id)!, cancellationToken).ConfigureAwait(false)
                : await client.RemoveMemberAsync(result.GetValue(id)!, cancellationToken).ConfigureAwait(false);
            Print(context, result, members);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static Uri? Url(string option, string? text)
    {
        if (text is null)
        {
            return null;
        }
        return Uri.TryCreate(text, UriKind.Absolute, out var url) && url.Scheme == Uri.UriSchemeHttp
            ? url
            : throw new UsageException($"{option}: '{text}' is not an http:// URL (for example http://10.0.0.4:9080)");
    }

    private static void Print(CliContext context, ParseResult result, MembersResponse members)
    {
        if (context.Json(result))
        {
            CliContext.WriteJson(members, ContractsJson.Default.MembersResponse);
            return;
        }
        var table = new Table().AddColumns("id", "role", "peer url", "client url", "leader");
        foreach (var member in members.Members)
        {
            table.AddRow(member.Id, member.Role == "voter" ? member.Role : $"[yellow]{member.Role}[/]", Markup.Escape(member.PeerUrl ?? ""),
                Markup.Escape(member.ClientUrl ?? ""), member.IsLeader ? "[green]yes[/]" : "");
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"cluster {members.ClusterId}{(members.ChangeInFlight ? ", [yellow]a change is in flight[/]" : "")}");
    }
}
