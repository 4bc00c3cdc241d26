using System.Globalization;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using RaftKv.Contracts;
using RaftKv.RaftCore;

namespace RaftKv.Hosting;

/// <summary>What a client token may do. Each role includes the ones before it.</summary>
public enum RaftRole
{
    /// <summary>Reads (and watches): GET, linearizable or stale, the member list.</summary>
    Read = 1,

    /// <summary>Reads and writes.</summary>
    Write = 2,

    /// <summary>Writes, and the cluster itself: membership, leadership transfer, backups.</summary>
    Admin = 3,
}

/// <summary>
/// Client tokens (configuration section RaftKv:Auth). With no tokens file, every client may do everything (development,
/// and the quick start). With one, every client route needs a bearer token: 401 without a valid one, 403 when its role
/// is too low; <c>/health</c> stays open, and <c>/status</c> and <c>/metrics</c> are open unless closed here.
/// </summary>
public sealed class AuthOptions : IValidatedOptions
{
    /// <summary>
    /// A file of tokens, one per line: <c>name role sha256:HEX</c> (role read, write or admin; HEX the SHA-256 of the token
    /// in lowercase hex). Tokens themselves are never stored: <c>raft-cli token new NAME ROLE</c> makes one and prints its
    /// line. Empty: no tokens, no checks.
    /// </summary>
    public string TokensFile { get; set; } = "";

    /// <summary>
    /// Tokens given in the settings themselves, as the file's lines separated by ';' (for example from an environment
    /// variable of a container's secret). Added to <see cref="TokensFile"/>'s, if any.
    /// </summary>
    public string Tokens { get; set; } = "";

    /// <summary>Whether <c>/status</c> answers without a token (it shows the members' addresses and progress).</summary>
    public bool OpenStatus { get; set; } = true;

    /// <summary>Whether <c>/metrics</c> answers without a token (for a Prometheus without credentials).</summary>
    public bool OpenMetrics { get; set; } = true;

    public IEnumerable<string> Validate()
    {
        if (string.IsNullOrWhiteSpace(TokensFile) && string.IsNullOrWhiteSpace(Tokens))
        {
            yield break;
        }
        string? failure = null;
        try
        {
            TokenStore.Load(this);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException or FormatException)
        {
            failure = error.Message.StartsWith("Tokens", StringComparison.Ordinal) ? error.Message : $"TokensFile: {error.Message}";
        }
        if (failure is not null)
        {
            yield return failure;
        }
    }
}

/// <summary>The tokens a node accepts, as SHA-256 hashes with a name and a role. Compared in constant time.</summary>
public sealed class TokenStore
{
    private readonly List<(byte[] Hash, string Name, RaftRole Role)> _tokens;

    private TokenStore(List<(byte[] Hash, string Name, RaftRole Role)> tokens) => _tokens = tokens;

    public int Count => _tokens.Count;

    /// <summary>The tokens of <see cref="AuthOptions.TokensFile"/> and <see cref="AuthOptions.Tokens"/>.</summary>
    public static TokenStore Load(AuthOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var tokens = new List<(byte[], string, RaftRole)>();
        if (!string.IsNullOrWhiteSpace(options.TokensFile))
        {
            tokens.AddRange(Parse(File.ReadAllLines(options.TokensFile), options.TokensFile));
        }
        tokens.AddRange(Parse(options.Tokens.Split(';'), "Tokens"));
        if (tokens.Count == 0)
        {
            throw new FormatException($"{options.TokensFile} holds no token; leave TokensFile and Tokens empty to run without tokens");
        }
        return new TokenStore(tokens);
    }

    private static List<(byte[], string, RaftRole)> Parse(IEnumerable<string> lines, string source)
    {
        var tokens = new List<(byte[], string, RaftRole)>();
        var number = 0;
        foreach (var raw in lines)
        {
            number++;
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 3 || !Enum.TryParse<RaftRole>(parts[1], ignoreCase: true, out var role) || !Enum.IsDefined(role)
                || !parts[2].StartsWith(TokenFormat.HashPrefix, StringComparison.Ordinal) || parts[2].Length != TokenFormat.HashPrefix.Length + 64
                || !parts[2][TokenFormat.HashPrefix.Length..].All(Uri.IsHexDigit))
            {
                throw new FormatException($"{source} line {number}: not 'name role sha256:HEX' with role read, write or admin and 64 hex digits");
            }
            tokens.Add((Convert.FromHexString(parts[2].AsSpan(TokenFormat.HashPrefix.Length)), parts[0], role));
        }
        return tokens;
    }

    /// <summary>The name and role of <paramref name="token"/>, or null. Every stored hash is compared, whatever matches.</summary>
    public (string Name, RaftRole Role)? Find(string token)
    {
        var hash = TokenFormat.Hash(token);
        (string, RaftRole)? found = null;
        foreach (var (stored, name, role) in _tokens)
        {
            if (CryptographicOperations.FixedTimeEquals(stored, hash))
            {
                found = (name, role);
            }
        }
        return found;
    }
}

/// <summary>Checks a request's bearer token against the role a route needs.</summary>
public sealed class RaftAccess
{
    private readonly TokenStore? _tokens;

    public RaftAccess(IOptions<AuthOptions> options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Value;
        _tokens = string.IsNullOrWhiteSpace(Options.TokensFile) && string.IsNullOrWhiteSpace(Options.Tokens) ? null : TokenStore.Load(Options);
    }

    public AuthOptions Options { get; }

    /// <summary>Whether tokens are checked at all.</summary>
    public bool Enabled => _tokens is not null;

    /// <summary>Null if the request may do what <paramref name="needed"/> allows; else the 401 or 403 problem to answer.</summary>
    public ProblemResponse? Check(HttpContext http, RaftRole needed)
    {
        ArgumentNullException.ThrowIfNull(http);
        if (_tokens is null)
        {
            return null;
        }
        var header = http.Request.Headers.Authorization.ToString();
        const string Bearer = "Bearer ";
        if (!header.StartsWith(Bearer, StringComparison.OrdinalIgnoreCase) || _tokens.Find(header[Bearer.Length..].Trim()) is not { } holder)
        {
            http.Response.Headers.WWWAuthenticate = "Bearer";
            return new ProblemResponse("urn:raftkv:problem:unauthorized", "Unauthorized", 401,
                header.Length == 0 ? "Authorization: a bearer token is needed (Authorization: Bearer <token>)" : "Authorization: the token is not valid",
                "Authorization");
        }
        return holder.Role >= needed
            ? null
            : new ProblemResponse("urn:raftkv:problem:forbidden", "Forbidden", 403,
                string.Create(CultureInfo.InvariantCulture, $"Authorization: the token '{holder.Name}' has the role {holder.Role.ToString().ToLowerInvariant()}; this needs {needed.ToString().ToLowerInvariant()}"),
                "Authorization");
    }

    public static JsonHttpResult<ProblemResponse> Problem(ProblemResponse problem)
    {
        ArgumentNullException.ThrowIfNull(problem);
        return TypedResults.Json(problem, ContractsJson.Default.ProblemResponse, ProblemResponse.ContentType, problem.Status);
    }
}

/// <summary>Route conventions: the role a route (or a group of routes) needs.</summary>
public static class RaftAccessExtensions
{
    public static TBuilder RequireRaftRole<TBuilder>(this TBuilder builder, RaftRole role) where TBuilder : IEndpointConventionBuilder
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.AddEndpointFilter(async (context, next) =>
        {
            var access = context.HttpContext.RequestServices.GetRequiredService<RaftAccess>();
            return access.Check(context.HttpContext, role) is { } problem ? RaftAccess.Problem(problem) : await next(context).ConfigureAwait(false);
        });
        return builder;
    }
}
