using System.Globalization;
using System.Text;
using RaftKv.RaftCore;

namespace RaftKv.Hosting;

/// <summary>A pod of a StatefulSet as a member: its node id and the member list every pod derives alike.</summary>
internal sealed record StatefulSetMember(int Ordinal, NodeId Id, string Peers);

/// <summary>
/// RaftKv:Node:StatefulSet = NAME:REPLICAS:DOMAIN. Kubernetes names the pods of StatefulSet NAME NAME-0 … NAME-(REPLICAS-1)
/// and, through a headless Service, gives each the DNS name NAME-ORDINAL.DOMAIN (DOMAIN = SERVICE.NAMESPACE.svc.cluster.local,
/// or just SERVICE inside the namespace). Pod NAME-k is node n(k+1); the members are every pod, at the same peer port. Every
/// pod computes the same list, so they bootstrap one cluster, as etcd's --initial-cluster would with the list written out.
/// </summary>
internal static class StatefulSetPeers
{
    /// <summary>At most this many replicas: a RaftKv cluster has at most 7 members.</summary>
    public const int MaxReplicas = 7;

    public static bool TryResolve(string spec, string hostName, string scheme, int peerPort, out StatefulSetMember member, out string error)
    {
        member = null!;
        var parts = spec.Split(':');
        if (parts.Length != 3)
        {
            error = $"'{spec}' is not NAME:REPLICAS:DOMAIN (for example raftkv:3:raftkv.default.svc.cluster.local)";
            return false;
        }
        var (name, replicasText, domain) = (parts[0], parts[1], parts[2]);
        if (!IsLabel(name))
        {
            error = $"'{name}' is not a StatefulSet name (lower-case letters, digits and '-', at most 63)";
            return false;
        }
        if (!int.TryParse(replicasText, NumberStyles.None, CultureInfo.InvariantCulture, out var replicas) || replicas < 1 || replicas > MaxReplicas)
        {
            error = $"replicas '{replicasText}' is not a number in [1, {MaxReplicas}]";
            return false;
        }
        if (Uri.CheckHostName(domain) != UriHostNameType.Dns || domain.Split('.').Any(label => !IsLabel(label)))
        {
            error = $"'{domain}' is not a DNS domain (the headless Service, for example raftkv.default.svc.cluster.local)";
            return false;
        }
        // The pod's host name is NAME-ORDINAL; a fully qualified one is cut at its first dot.
        var pod = hostName.Split('.')[0];
        if (!pod.StartsWith(name + "-", StringComparison.Ordinal)
            || !int.TryParse(pod.AsSpan(name.Length + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var ordinal))
        {
            error = $"this host is named '{hostName}', not {name}-<ordinal> (a pod of StatefulSet {name})";
            return false;
        }
        if (ordinal >= replicas)
        {
            error = $"pod {pod} is past the {replicas} replicas named here; members beyond the first {replicas} join with raft-cli member add";
            return false;
        }
        member = new StatefulSetMember(ordinal, IdOf(ordinal), PeerList(name, replicas, domain, scheme, peerPort));
        error = "";
        return true;
    }

    /// <summary>Pod NAME-k is node n(k+1): node ids start at 1, ordinals at 0.</summary>
    public static NodeId IdOf(int ordinal) => new((ulong)ordinal + 1);

    /// <summary>n1=http://NAME-0.DOMAIN:PORT,n2=…, every replica.</summary>
    public static string PeerList(string name, int replicas, string domain, string scheme, int peerPort)
    {
        var list = new StringBuilder();
        for (var ordinal = 0; ordinal < replicas; ordinal++)
        {
            list.Append(list.Length > 0 ? "," : "")
                .Append(CultureInfo.InvariantCulture, $"{IdOf(ordinal)}={scheme}://{name}-{ordinal}.{domain}:{peerPort}");
        }
        return list.ToString();
    }

    private static bool IsLabel(string text) =>
        text.Length is > 0 and <= 63 && text.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-') && text[0] != '-' && text[^1] != '-';
}
