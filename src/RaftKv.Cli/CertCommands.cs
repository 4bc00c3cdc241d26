using System.CommandLine;
using System.Security.Cryptography;
using RaftKv.Contracts;

namespace RaftKv.Cli;

/// <summary>
/// raft-cli certs init|node|client: a local cluster CA and certificates signed by it (<see cref="ClusterCertificates"/>),
/// as PEM files that RaftKv:Tls and raft-cli --cacert read. For a test or a small cluster; a company CA works the same way.
/// </summary>
internal static class CertCommands
{
    public static Command Create()
    {
        var command = new Command("certs", """
            Make a cluster CA and certificates for nodes and clients (PEM files in --dir).

            Examples:
              raft-cli certs init --dir certs
              raft-cli certs node n1 --host 10.0.0.1 --host node1.example --dir certs
              raft-cli certs client deploy-bot --dir certs
            """);
        command.Subcommands.Add(Init());
        command.Subcommands.Add(Leaf("node", "A node's certificate: its common name is the node id; --host names what peers and clients dial.", server: true));
        command.Subcommands.Add(Leaf("client", "A client certificate (client authentication only).", server: false));
        return command;
    }

    private static Option<DirectoryInfo> DirOption() => new("--dir") { Description = "Where the PEM files are", DefaultValueFactory = _ => new DirectoryInfo("certs") };

    private static Option<int> DaysOption() => new("--days") { Description = "Days the certificate is valid", DefaultValueFactory = _ => 365 };

    private static Command Init()
    {
        var dir = DirOption();
        var days = DaysOption();
        var command = new Command("init", "Make the cluster CA: ca.pem (give it to every node and client) and ca-key.pem (keep it safe).");
        command.Options.Add(dir);
        command.Options.Add(days);
        command.SetAction(result =>
        {
            var folder = result.GetValue(dir)!;
            var certificate = Path.Combine(folder.FullName, "ca.pem");
            if (File.Exists(certificate))
            {
                Console.Error.WriteLine($"raft-cli: {certificate} exists; a CA is made once");
                return ExitCodes.Usage;
            }
            ClusterCertificates.CreateCa(folder.FullName, result.GetValue(days));
            Console.Out.WriteLine($"OK: {certificate} and ca-key.pem");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static Command Leaf(string name, string description, bool server)
    {
        var id = new Argument<string>("name") { Description = server ? "The node id (n1)" : "Who the client is" };
        var hosts = new Option<string[]>("--host") { Description = "An IP address or DNS name the node is dialled at (repeat)", AllowMultipleArgumentsPerToken = true };
        var dir = DirOption();
        var days = DaysOption();
        var command = new Command(name, description);
        command.Arguments.Add(id);
        if (server)
        {
            command.Options.Add(hosts);
        }
        command.Options.Add(dir);
        command.Options.Add(days);
        command.SetAction(result =>
        {
            var folder = result.GetValue(dir)!;
            var who = result.GetValue(id)!;
            if (server && !RaftCore.NodeId.TryParse(who, out _))
            {
                Console.Error.WriteLine($"raft-cli: certs node: '{who}' is not a node id (n1 or 1)");
                return ExitCodes.Usage;
            }
            try
            {
                ClusterCertificates.CreateLeaf(folder.FullName, who, server ? result.GetValue(hosts) ?? [] : null, result.GetValue(days));
            }
            catch (Exception error) when (error is IOException or CryptographicException)
            {
                Console.Error.WriteLine($"raft-cli: no CA in {folder.FullName} ({error.Message}); run raft-cli certs init first");
                return ExitCodes.Usage;
            }
            Console.Out.WriteLine($"OK: {Path.Combine(folder.FullName, who + ".pem")} and {who}-key.pem, signed by {Path.Combine(folder.FullName, "ca.pem")}");
            return ExitCodes.Ok;
        });
        return command;
    }
}
