using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Options;
using RaftKv.Contracts;
using RaftKv.RaftCore;

namespace RaftKv.Hosting;

/// <summary>
/// TLS for both ports (configuration section RaftKv:Tls), from PEM files: this node's certificate and key, and the
/// cluster CA. With them, clients speak HTTPS to the client port, and peers mutual TLS to the peer port: a peer must show
/// a certificate of the cluster CA whose common name is its node id. Without them both ports are cleartext (development,
/// the quick start). <c>raft-cli certs</c> makes a CA and node certificates.
/// </summary>
public sealed class TlsOptions : IValidatedOptions
{
    /// <summary>This node's certificate (PEM). Its common name must be the node id; its names (IP or DNS) what peers and clients dial.</summary>
    public string CertFile { get; set; } = "";

    /// <summary>The certificate's private key (PEM).</summary>
    public string KeyFile { get; set; } = "";

    /// <summary>The cluster CA (PEM bundle): peers' certificates must chain to it.</summary>
    public string CaFile { get; set; } = "";

    public bool Enabled => CertFile.Length > 0;

    public IEnumerable<string> Validate()
    {
        var given = new[] { CertFile, KeyFile, CaFile }.Count(f => !string.IsNullOrWhiteSpace(f));
        if (given is not (0 or 3))
        {
            return ["CertFile/KeyFile/CaFile: give all three (TLS on both ports) or none (cleartext)"];
        }
        if (given == 0)
        {
            return [];
        }
        try
        {
            using var certificate = LoadCertificate();
            TlsTrust.LoadCa(CaFile);
            return certificate.HasPrivateKey ? [] : [$"KeyFile: {KeyFile} is not the key of {CertFile}"];
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or CryptographicException or FormatException or ArgumentException)
        {
            return [$"CertFile/KeyFile/CaFile: {error.Message}"];
        }
    }

    public X509Certificate2 LoadCertificate() => X509Certificate2.CreateFromPemFile(CertFile, KeyFile);
}

/// <summary>With TLS on, every URL is https://; without it, http://. A mix would fail at the first connection, so it fails at start.</summary>
internal sealed class SchemesMatchTlsValidator(IOptions<TlsOptions> tls) : IValidateOptions<NodeOptions>
{
    public ValidateOptionsResult Validate(string? name, NodeOptions options)
    {
        bool enabled;
        try
        {
            enabled = tls.Value.Enabled;
        }
        catch (OptionsValidationException)
        {
            return ValidateOptionsResult.Skip; // the Tls section is reported on its own
        }
        var scheme = enabled ? "https" : "http";
        var urls = new List<(string Setting, string Url)>
        {
            ("Http", options.Http), ("Peer", options.Peer), ("Join", options.Join), ("ListenHttp", options.ListenHttp), ("ListenPeer", options.ListenPeer),
        };
        urls.AddRange(options.EffectivePeers.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(part => ("Peers", part[(part.IndexOf('=', StringComparison.Ordinal) + 1)..])));
        var wrong = urls.Where(u => u.Url.Length > 0 && Uri.TryCreate(u.Url, UriKind.Absolute, out var uri) && uri.Scheme != scheme).ToList();
        var failures = wrong.Select(u =>
            $"RaftKv:Node:{u.Setting}: '{u.Url}' must be {scheme}:// {(enabled ? "with TLS on (RaftKv:Tls)" : "without TLS (set RaftKv:Tls:CertFile, KeyFile and CaFile for https)")}").ToList();
        if (enabled && !string.IsNullOrWhiteSpace(options.ListenHttp2))
        {
            // A cleartext listener would serve the client API past TLS.
            failures.Add($"RaftKv:Node:ListenHttp2: '{options.ListenHttp2}' is a cleartext listener; with TLS on, the client port ({options.Http}) negotiates HTTP/2 itself: leave ListenHttp2 empty");
        }
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
