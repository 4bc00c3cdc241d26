using System.CommandLine;
using System.Net;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace RaftKv.Cli;

/// <summary>
/// raft-cli certs init|node|client: a local cluster CA and certificates signed by it (ECDSA P-256, .NET's own APIs), as
/// PEM files that RaftKv:Tls and raft-cli --cacert read. For a test or a small cluster; a company CA works the same way.
/// </summary>
internal static class CertCommands
{
    private const string ServerAuth = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuth = "1.3.6.1.5.5.7.3.2";

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
            folder.Create();
            var certificate = Path.Combine(folder.FullName, "ca.pem");
            if (File.Exists(certificate))
            {
                Console.Error.WriteLine($"raft-cli: {certificate} exists; a CA is made once");
                return ExitCodes.Usage;
            }
            using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
            var request = new CertificateRequest("CN=RaftKv cluster CA", key, HashAlgorithmName.SHA256);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 1, true));
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
            request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
            using var ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(result.GetValue(days)));
            Write(folder, "ca", ca, key);
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
            X509Certificate2 ca;
            try
            {
                ca = X509Certificate2.CreateFromPemFile(Path.Combine(folder.FullName, "ca.pem"), Path.Combine(folder.FullName, "ca-key.pem"));
            }
            catch (Exception error) when (error is IOException or CryptographicException)
            {
                Console.Error.WriteLine($"raft-cli: no CA in {folder.FullName} ({error.Message}); run raft-cli certs init first");
                return ExitCodes.Usage;
            }
            using (ca)
            {
                using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
                var request = new CertificateRequest($"CN={who}", key, HashAlgorithmName.SHA256);
                request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
                request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
                request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
                    server ? [new Oid(ServerAuth), new Oid(ClientAuth)] : [new Oid(ClientAuth)], false));
                request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
                request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
                if (server)
                {
                    var names = new SubjectAlternativeNameBuilder();
                    names.AddDnsName(who);
                    foreach (var host in result.GetValue(hosts) ?? [])
                    {
                        if (IPAddress.TryParse(host, out var address))
                        {
                            names.AddIpAddress(address);
                        }
                        else
                        {
                            names.AddDnsName(host);
                        }
                    }
                    request.CertificateExtensions.Add(names.Build());
                }
                var serial = BigInteger.Abs(new BigInteger(RandomNumberGenerator.GetBytes(16))).ToByteArray();
                var notAfter = DateTimeOffset.UtcNow.AddDays(result.GetValue(days));
                using var certificate = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), notAfter < ca.NotAfter ? notAfter : ca.NotAfter, serial);
                Write(folder, who, certificate, key);
                Console.Out.WriteLine($"OK: {Path.Combine(folder.FullName, who + ".pem")} and {who}-key.pem, signed by {Path.Combine(folder.FullName, "ca.pem")}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void Write(DirectoryInfo folder, string name, X509Certificate2 certificate, ECDsa key)
    {
        File.WriteAllText(Path.Combine(folder.FullName, name + ".pem"), certificate.ExportCertificatePem() + "\n");
        var keyFile = Path.Combine(folder.FullName, name + "-key.pem");
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem() + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}
