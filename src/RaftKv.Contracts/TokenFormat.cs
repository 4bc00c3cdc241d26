using System.Security.Cryptography;
using System.Text;

namespace RaftKv.Contracts;

/// <summary>
/// Client tokens as a node's tokens file holds them: one line <c>name role sha256:HEX</c> per token, the token itself
/// never stored. Shared by the node (which checks) and raft-cli (which makes tokens).
/// </summary>
public static class TokenFormat
{
    public const string HashPrefix = "sha256:";

    /// <summary>A new random token: 32 bytes, base64url, with a prefix that secret scanners can recognize.</summary>
    public static string NewToken() =>
        "rkv_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static byte[] Hash(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return SHA256.HashData(Encoding.UTF8.GetBytes(token));
    }

    /// <summary>The tokens-file line for <paramref name="token"/>; <paramref name="role"/> is read, write or admin.</summary>
    public static string Line(string name, string role, string token) => $"{name} {role} {HashPrefix}{Convert.ToHexStringLower(Hash(token))}";
}
