using System.Net.Security;
using System.Security.Cryptography.X509Certificates;

namespace RaftKv.Contracts;

/// <summary>
/// Trust in one cluster CA instead of the machine's store: a certificate is trusted when it chains to the CA bundle the
/// node or client was given. Used by nodes (peers both ways), the client library and raft-cli.
/// </summary>
public static class TlsTrust
{
    /// <summary>The CA certificates in a PEM bundle.</summary>
    public static X509Certificate2Collection LoadCa(string pemFile)
    {
        var ca = new X509Certificate2Collection();
        ca.ImportFromPemFile(pemFile);
        return ca.Count > 0 ? ca : throw new FormatException($"{pemFile} holds no certificate");
    }

    /// <summary>Whether <paramref name="certificate"/> chains to one of <paramref name="ca"/> (revocation is not checked).</summary>
    public static bool IsSignedBy(X509Certificate? certificate, X509Certificate2Collection ca)
    {
        ArgumentNullException.ThrowIfNull(ca);
        if (certificate is null)
        {
            return false;
        }
        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(leaf);
    }

    /// <summary>A client's check of a server: the name must match (host or IP in the certificate), and it must chain to the CA.</summary>
    public static RemoteCertificateValidationCallback ServerValidator(X509Certificate2Collection ca) =>
        (_, certificate, _, errors) => (errors & ~SslPolicyErrors.RemoteCertificateChainErrors) == SslPolicyErrors.None && IsSignedBy(certificate, ca);

    /// <summary>The certificate's common name: for a node's certificate, its node id (n1).</summary>
    public static string? CommonName(X509Certificate? certificate)
    {
        if (certificate is null)
        {
            return null;
        }
        using var loaded = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        return loaded.GetNameInfo(X509NameType.SimpleName, forIssuer: false);
    }
}
