using System.Net;
using System.Numerics;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace RaftKv.Contracts;

/// <summary>
/// A cluster CA and certificates signed by it (ECDSA P-256, .NET's own APIs), written as PEM files: what
/// <c>raft-cli certs</c> makes, and what tests make for a cluster with TLS.
/// </summary>
public static class ClusterCertificates
{
    private const string ServerAuth = "1.3.6.1.5.5.7.3.1";
    private const string ClientAuth = "1.3.6.1.5.5.7.3.2";

    /// <summary>Writes ca.pem and ca-key.pem into <paramref name="folder"/>.</summary>
    public static void CreateCa(string folder, int days)
    {
        Directory.CreateDirectory(folder);
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=RaftKv cluster CA", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 1, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        using var ca = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(days));
        Write(folder, "ca", ca, key);
    }

    /// <summary>
    /// Writes NAME.pem and NAME-key.pem, signed by the CA in <paramref name="folder"/>: for a node (<paramref name="hosts"/>
    /// not null: server and client authentication, named by the node id and its hosts) or a client (client authentication).
    /// </summary>
    public static void CreateLeaf(string folder, string name, IReadOnlyList<string>? hosts, int days)
    {
        using var ca = X509Certificate2.CreateFromPemFile(Path.Combine(folder, "ca.pem"), Path.Combine(folder, "ca-key.pem"));
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            hosts is not null ? [new Oid(ServerAuth), new Oid(ClientAuth)] : [new Oid(ClientAuth)], false));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        if (hosts is not null)
        {
            var names = new SubjectAlternativeNameBuilder();
            names.AddDnsName(name);
            foreach (var host in hosts)
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
        var notAfter = DateTimeOffset.UtcNow.AddDays(days);
        using var certificate = request.Create(ca, DateTimeOffset.UtcNow.AddMinutes(-5), notAfter < ca.NotAfter ? notAfter : ca.NotAfter, serial);
        Write(folder, name, certificate, key);
    }

    private static void Write(string folder, string name, X509Certificate2 certificate, ECDsa key)
    {
        File.WriteAllText(Path.Combine(folder, name + ".pem"), certificate.ExportCertificatePem() + "\n");
        var keyFile = Path.Combine(folder, name + "-key.pem");
        File.WriteAllText(keyFile, key.ExportPkcs8PrivateKeyPem() + "\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}
