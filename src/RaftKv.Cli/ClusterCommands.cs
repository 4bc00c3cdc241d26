using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace RaftKv.Cli;

internal static class ClusterCommands
{
    public static Command Status(CliContext context)
    {
        var command = new Command("status", """
            Every node's view: id, role, term, leader, commit, applied, and how far behind the leader it is.
            Exit code 5 if no endpoint answers.

            Example:
              raft-cli --endpoints http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083 status
            """);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            using var client = context.Client(result);
            var statuses = await client.ClusterStatusAsync(cancellationToken).ConfigureAwait(false);
            if (context.Json(result))
            {
                CliContext.WriteJson(statuses, CliJson.Default.IReadOnlyListEndpointStatus);
            }
            else
            {
                var lastIndex = statuses.Where(s => s.Status?.Role == "Leader").Select(s => s.Status!.LastIndex).DefaultIfEmpty(0UL).Max();
                var table = new Table().AddColumns("endpoint", "id", "role", "term", "leader", "commit", "applied", "lag", "storage");
                foreach (var (endpoint, status, error) in statuses)
                {
                    if (status is null)
                    {
                        table.AddRow(Markup.Escape(endpoint.ToString()), "", "[red]down[/]", "", "", "", "", "", Markup.Escape(error ?? ""));
                        continue;
                    }
                    table.AddRow(
                        Markup.Escape(endpoint.ToString()),
                        status.NodeId,
                        status.Role == "Leader" ? "[green]Leader[/]" : status.Role,
                        status.Term.ToString(CultureInfo.InvariantCulture),
                        status.Leader ?? "none",
                        CliContext.Number(status.Commit),
                        CliContext.Number(status.Applied),
                        lastIndex == 0 ? "?" : CliContext.Number(lastIndex - Math.Min(lastIndex, status.Applied)),
                        status.Storage.Failed ? "[red]failed[/]" : "ok");
                }
                AnsiConsole.Write(table);
            }
            return statuses.Any(s => s.Status is not null) ? ExitCodes.Ok : ExitCodes.Unavailable;
        }));
        return command;
    }

    public static Command Health(CliContext context)
    {
        var command = new Command("health", """
            Liveness and readiness of every node (ready: storage works, a leader is known, applied keeps up).
            Exit code 5 unless every node is ready.

            Example:
              raft-cli health
            """);
        command.SetAction((result, cancellationToken) => CliContext.GuardAsync(async () =>
        {
            using var client = context.Client(result);
            var reports = await client.HealthAsync(cancellationToken).ConfigureAwait(false);
            if (context.Json(result))
            {
                CliContext.WriteJson(reports, CliJson.Default.IReadOnlyListHealthReport);
            }
            else
            {
                var table = new Table().AddColumns("endpoint", "live", "ready", "detail");
                foreach (var report in reports)
                {
                    table.AddRow(Markup.Escape(report.Endpoint.ToString()), report.Live ? "[green]yes[/]" : "[red]no[/]",
                        report.Ready ? "[green]yes[/]" : "[red]no[/]", Markup.Escape(report.Detail));
                }
                AnsiConsole.Write(table);
            }
            return reports.All(r => r.Ready) ? ExitCodes.Ok : ExitCodes.Unavailable;
        }));
        return command;
    }
}
