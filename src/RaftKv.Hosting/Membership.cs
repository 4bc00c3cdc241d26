using System.Net.Http.Json;
using RaftKv.Storage;
using System.Text;
using RaftKv.Contracts;
using RaftKv.RaftCore;

namespace RaftKv.Hosting;

/// <summary>
/// How the runtime writes a member's address into the configuration (opaque to the core): its peer URL, then, when known,
/// its client URL, separated by a space. Members bootstrapped from --peers have no client URL.
/// </summary>
internal static class MemberAddress
{
    public static string Format(Uri peer, Uri? client) => client is null ? peer.ToString() : peer + " " + client;

    public static (Uri? Peer, Uri? Client) Parse(string text)
    {
        var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Uri? Url(int i) => parts.Length > i && Uri.TryCreate(parts[i], UriKind.Absolute, out var url) ? url : null;
        return (Url(0), Url(1));
    }
}

/// <summary>A membership change as a follower forwards it to the leader: "add-learner n4 address", "promote n4", "remove n4".</summary>
internal static class ConfChangeCodec
{
    public static byte[] Encode(ConfChange change) => Encoding.UTF8.GetBytes(change.Kind switch
    {
        ConfChangeKind.AddLearner => $"add-learner {change.Node} {change.Address}",
        ConfChangeKind.Promote => $"promote {change.Node}",
        _ => $"remove {change.Node}",
    });

    public static ConfChange? Decode(ReadOnlySpan<byte> bytes)
    {
        var parts = Encoding.UTF8.GetString(bytes).Split(' ', 3);
        if (parts.Length < 2 || !NodeId.TryParse(parts[1], out var node))
        {
            return null;
        }
        return parts[0] switch
        {
            "add-learner" when parts.Length == 3 => new ConfChange(ConfChangeKind.AddLearner, node, parts[2]),
            "promote" when parts.Length == 2 => new ConfChange(ConfChangeKind.Promote, node),
            "remove" when parts.Length == 2 => new ConfChange(ConfChangeKind.Remove, node),
            _ => null,
        };
    }
}

/// <summary>What a joining node learns from a member: the cluster's id and every member's peer URL.</summary>
internal sealed record JoinInfo(ulong ClusterId, IReadOnlyDictionary<NodeId, Uri> Peers);

internal static class JoinClient
{
    /// <summary>How long a joining node keeps asking a member that does not answer, before it gives up (exit code 2).</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    public static async Task<JoinInfo> FetchMembersAsync(Uri member, NodeId self, System.Security.Cryptography.X509Certificates.X509Certificate2Collection? ca,
        CancellationToken cancellationToken)
    {
        var handler = new SocketsHttpHandler();
        if (ca is not null)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = TlsTrust.ServerValidator(ca);
        }
        using var http = new HttpClient(handler) { BaseAddress = member, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + Patience;
        while (true)
        {
            try
            {
                var members = await http.GetFromJsonAsync("cluster/members", ContractsJson.Default.MembersResponse, cancellationToken).ConfigureAwait(false)
                    ?? throw new NodeStartException($"Join: {member} answered GET /cluster/members with nothing");
                if (!NodeIdentity.TryParseId(members.ClusterId, out var clusterId))
                {
                    throw new NodeStartException($"Join: {member} names no cluster id ('{members.ClusterId}')");
                }
                var peers = new Dictionary<NodeId, Uri>();
                foreach (var m in members.Members)
                {
                    if (NodeId.TryParse(m.Id, out var id) && id != self && Uri.TryCreate(m.PeerUrl, UriKind.Absolute, out var url))
                    {
                        peers[id] = url;
                    }
                }
                return new JoinInfo(clusterId, peers);
            }
            catch (Exception error) when (error is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException
                && !cancellationToken.IsCancellationRequested && DateTime.UtcNow < deadline)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken).ConfigureAwait(false);
            }
            catch (Exception error) when (error is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException)
            {
                throw new NodeStartException($"Join: {member} did not answer GET /cluster/members within {Patience.TotalSeconds:0} s: {error.Message}");
            }
        }
    }
}

/// <summary>The node cannot start as configured (it cannot reach the cluster it was told to join): one line, exit code 2.</summary>
public sealed class NodeStartException : Exception
{
    public NodeStartException(string message) : base(message)
    {
    }

    public NodeStartException()
    {
    }

    public NodeStartException(string message, Exception innerException) : base(message, innerException)
    {
    }
}
