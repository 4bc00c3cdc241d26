using System.Globalization;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using RaftKv.Cli.Etcd;
using RaftKv.Client;

namespace RaftKv.Cli;

/// <summary>
/// etcd over its v3 gRPC API (plain HTTP/2 on the client port): writes are KV.Put, reads KV.Range of one key,
/// linearizable unless --consistency stale (serializable). Like RaftKv's clients, these send to the leader, found by
/// asking every endpoint for its Maintenance.Status; a follower would forward writes and reads to it too. The clients
/// share --connections channels round-robin (one HTTP/2 connection each, many calls in flight on it), one unless told
/// otherwise: etcd's own benchmark tool does the same, and on this 2-core machine one connection served etcd more
/// writes/s than one per client (64 clients: 2,800-4,500 against 2,300-3,900; 256 clients: 4,700-5,000 against
/// 3,400-3,500, alternating). Keys are the same names as RaftKv's and the value the same bytes, prepared once so that
/// the tool's own cost stays out of the measurement.
/// </summary>
internal sealed class EtcdBenchmarkClients : IBenchmarkClients
{
    private readonly List<GrpcChannel> _channels;
    private readonly KV.KVClient[] _kv;
    private readonly ByteString[] _keys;
    private readonly ByteString _value;
    private readonly bool _serializable;
    private readonly TimeSpan _timeout;

    private EtcdBenchmarkClients(List<GrpcChannel> channels, BenchmarkSettings settings, TimeSpan timeout)
    {
        _channels = channels;
        _kv = [.. Enumerable.Range(0, settings.Clients).Select(i => new KV.KVClient(channels[i % channels.Count]))];
        _keys = [.. BenchmarkKeys.Names(settings.Keys).Select(ByteString.CopyFromUtf8)];
        _value = ByteString.CopyFrom(Enumerable.Repeat((byte)'x', settings.ValueSize).ToArray());
        _serializable = settings.Consistency == "stale";
        _timeout = timeout;
    }

    public static async Task<EtcdBenchmarkClients> ConnectAsync(IReadOnlyList<Uri> endpoints, BenchmarkSettings settings, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var leader = await FindLeaderAsync(endpoints, cancellationToken).ConfigureAwait(false);
        var channels = Enumerable.Range(0, settings.Connections ?? 1).Select(_ => Channel(leader)).ToList();
        var connected = new EtcdBenchmarkClients(channels, settings, timeout);
        try
        {
            // Every channel opens its connection before the clock starts, as RaftKv's clients do with their first /status.
            await Task.WhenAll(channels.Select(c => new Maintenance.MaintenanceClient(c)
                .StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow + timeout, cancellationToken: cancellationToken).ResponseAsync)).ConfigureAwait(false);
            return connected;
        }
        catch (RpcException error)
        {
            connected.Dispose();
            throw new ClusterUnavailableException($"etcd at {leader}: {error.Status.Detail} ({error.StatusCode})", error);
        }
    }

    private PutRequest Put(int key) => new() { Key = _keys[key], Value = _value };

    private RangeRequest Range(int key) => new() { Key = _keys[key], Serializable = _serializable };

    public async Task WriteAsync(int client, int key, CancellationToken cancellationToken)
    {
        using var call = _kv[client].PutAsync(Put(key), deadline: DateTime.UtcNow + _timeout, cancellationToken: cancellationToken);
        await call.ResponseAsync.ConfigureAwait(false);
    }

    public async Task ReadAsync(int client, int key, CancellationToken cancellationToken)
    {
        using var call = _kv[client].RangeAsync(Range(key), deadline: DateTime.UtcNow + _timeout, cancellationToken: cancellationToken);
        await call.ResponseAsync.ConfigureAwait(false);
    }

    /// <summary>grpc-Unavailable, grpc-DeadlineExceeded, …: etcd's answer by its gRPC status.</summary>
    public string? ErrorKind(Exception error) => error is RpcException rpc ? "grpc-" + rpc.StatusCode.ToString() : null;

    public void Dispose()
    {
        foreach (var channel in _channels)
        {
            channel.Dispose();
        }
    }

    /// <summary>The endpoint whose member is the leader by its own Status; unavailable when none says so.</summary>
    private static async Task<Uri> FindLeaderAsync(IReadOnlyList<Uri> endpoints, CancellationToken cancellationToken)
    {
        var seen = new List<string>();
        foreach (var endpoint in endpoints)
        {
            using var channel = Channel(endpoint);
            try
            {
                var status = await new Maintenance.MaintenanceClient(channel)
                    .StatusAsync(new StatusRequest(), deadline: DateTime.UtcNow.AddSeconds(3), cancellationToken: cancellationToken).ResponseAsync.ConfigureAwait(false);
                if (status.Leader != 0 && status.Header.MemberId == status.Leader)
                {
                    return endpoint;
                }
                seen.Add(string.Create(CultureInfo.InvariantCulture, $"{endpoint}: etcd {status.Version}, member {status.Header.MemberId:x}, leader {status.Leader:x}"));
            }
            catch (RpcException error)
            {
                seen.Add($"{endpoint}: {error.StatusCode} {error.Status.Detail}");
            }
        }
        throw new ClusterUnavailableException("no etcd endpoint is the leader (" + string.Join("; ", seen) + ")");
    }

    /// <summary>One HTTP/2 connection, plain text (h2c) for http:// endpoints.</summary>
    private static GrpcChannel Channel(Uri endpoint) => GrpcChannel.ForAddress(endpoint, new GrpcChannelOptions
    {
        HttpHandler = new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = false,
            ConnectTimeout = TimeSpan.FromSeconds(2),
            PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan,
        },
        DisposeHttpClient = true,
    });
}
