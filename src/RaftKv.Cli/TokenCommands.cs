using System.CommandLine;
using System.Text.Json.Serialization;
using RaftKv.Contracts;

namespace RaftKv.Cli;

/// <summary>raft-cli token new: a client token and the line a node's tokens file needs for it.</summary>
internal static class TokenCommands
{
    public static Command Create(CliContext context)
    {
        var name = new Argument<string>("name") { Description = "Who the token is for (shown in 403 answers, never the token itself)" };
        var role = new Option<string>("--role") { Description = "read, write or admin", DefaultValueFactory = _ => "read" };
        role.AcceptOnlyFromAmong("read", "write", "admin");
        var create = new Command("new", """
            Make a random client token. Give the token to the client (raft-cli --token, or RAFTKV_TOKEN) and append the
            line to every node's tokens file (RaftKv:Auth:TokensFile); nodes store only its SHA-256.

            Example:
              raft-cli token new deploy-bot --role write
            """);
        create.Arguments.Add(name);
        create.Options.Add(role);
        create.SetAction(result =>
        {
            var who = result.GetValue(name)!;
            if (who.Length == 0 || who.Any(char.IsWhiteSpace))
            {
                Console.Error.WriteLine("raft-cli: token new: the name must be one word");
                return ExitCodes.Usage;
            }
            var secret = TokenFormat.NewToken();
            var made = new TokenMade(who, result.GetValue(role)!, secret, TokenFormat.Line(who, result.GetValue(role)!, secret));
            if (context.Json(result))
            {
                CliContext.WriteJson(made, TokenJson.Default.TokenMade);
            }
            else
            {
                Console.Out.WriteLine($"token: {made.Token}");
                Console.Out.WriteLine($"line for the tokens file: {made.Line}");
            }
            return ExitCodes.Ok;
        });
        var command = new Command("token", "Client tokens: raft-cli token new NAME --role read|write|admin");
        command.Subcommands.Add(create);
        return command;
    }
}

internal sealed record TokenMade(string Name, string Role, string Token, string Line);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(TokenMade))]
internal sealed partial class TokenJson : JsonSerializerContext;
