using Grpc.Core;
using Microsoft.Extensions.Logging;
using RaftKv.RaftCore;
using Proto = RaftKv.Transport.Protos;

namespace RaftKv.Transport;

/// <summary>The receiving side of the peer protocol: hands messages to the node, stores snapshot chunks, runs forwards.</summary>
internal sealed partial class RaftPeerService(IPeerHost host, IncomingSnapshots incoming, Microsoft.Extensions.Options.IOptions<TransportOptions> options,
    ILogger<RaftPeerService> logger) : Proto.RaftPeer.RaftPeerBase
{
    public override async Task<Proto.StreamClosed> Stream(IAsyncStreamReader<Proto.MessageBatch> requestStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(requestStream);
        ArgumentNullException.ThrowIfNull(context);
        var caller = Admit(context, PeerCall.Stream);
        using var closing = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, host.PeerStreamsClosing);
        try
        {
            await ReceiveAsync(requestStream, caller, closing.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (host.PeerStreamsClosing.IsCancellationRequested)
        {
            // This node is stopping: end the stream now rather than hold up shutdown.
        }
        return new Proto.StreamClosed();
    }

    private async Task ReceiveAsync(IAsyncStreamReader<Proto.MessageBatch> requestStream, NodeId caller, CancellationToken cancellationToken)
    {
        await foreach (var batch in requestStream.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            foreach (var proto in batch.Messages)
            {
                Message message;
                try
                {
                    message = MessageMapper.FromProto(proto);
                }
                catch (FormatException error)
                {
                    LogMalformed(proto.From, error.Message);
                    continue;
                }
                if (message.From != caller)
                {
                    // A stream speaks for the node that opened it, and no other.
                    host.Refused(caller, $"a message from {message.From} on {caller}'s stream");
                    continue;
                }
                if (message.To == host.Self)
                {
                    host.Deliver(message);
                }
            }
        }
    }

    /// <summary>
    /// Receives a snapshot: from the member that opened the call only, at most <see cref="TransportOptions.MaxIncomingSnapshots"/>
    /// at once, each chunk within <see cref="TransportOptions.SnapshotChunkTimeoutMs"/>. The bytes go to a temporary file that
    /// nothing sees (restart and retention included); if they match the CRC32C on the last chunk, the file goes to the
    /// node loop, which makes it current only if the core installs the snapshot (Raft's term and leader rules, and an index
    /// past the commit), and deletes it otherwise. A refused or broken stream leaves every existing snapshot untouched.
    /// </summary>
    public override async Task<Proto.SnapshotReceived> InstallSnapshot(IAsyncStreamReader<Proto.SnapshotChunk> requestStream, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(requestStream);
        ArgumentNullException.ThrowIfNull(context);
        var caller = Admit(context, PeerCall.InstallSnapshot); // before a byte of the snapshot is stored
        if (!incoming.TryEnter())
        {
            host.Refused(caller, $"a snapshot while {options.Value.MaxIncomingSnapshots} are being received");
            throw new RpcException(new Status(StatusCode.ResourceExhausted, $"{options.Value.MaxIncomingSnapshots} snapshots are being received; try again later"));
        }
        InstallSnapshot? install = null;
        ISnapshotWriter? writer = null;
        var crc = new System.IO.Hashing.Crc32(System.IO.Hashing.Crc32ParameterSet.Crc32C);
        using var stalled = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken);
        try
        {
            while (true)
            {
                stalled.CancelAfter(options.Value.SnapshotChunkTimeoutMs);
                if (!await requestStream.MoveNext(stalled.Token).ConfigureAwait(false))
                {
                    throw new RpcException(new Status(StatusCode.InvalidArgument, "the snapshot stream ended before its last chunk; nothing was stored"));
                }
                var chunk = requestStream.Current;
                if (install is null)
                {
                    if (chunk.Message is null || MessageMapper.FromProto(chunk.Message) is not InstallSnapshot first || first.To != host.Self)
                    {
                        throw new RpcException(new Status(StatusCode.InvalidArgument, "the first snapshot chunk must carry an InstallSnapshot for this node"));
                    }
                    if (first.From != caller)
                    {
                        var refusal = $"a snapshot from {first.From} on {caller}'s call";
                        host.Refused(caller, refusal);
                        throw new RpcException(new Status(StatusCode.FailedPrecondition, refusal));
                    }
                    install = first;
                    writer = host.Snapshots.Create(install.Snapshot);
                }
                crc.Append(chunk.Data.Span);
                await writer!.Stream.WriteAsync(chunk.Data.Memory, stalled.Token).ConfigureAwait(false);
                if (chunk.Last)
                {
                    if (crc.GetCurrentHashAsUInt32() != chunk.Crc32C)
                    {
                        host.Refused(caller, "a snapshot whose bytes do not match its checksum");
                        throw new RpcException(new Status(StatusCode.DataLoss, "the snapshot's bytes do not match its checksum; nothing was stored"));
                    }
                    LogSnapshotReceived(install.From, install.Snapshot.Index.Value);
                    // The node decides whether these bytes become its snapshot; it owns (and disposes) the file from here.
                    host.DeliverSnapshot(install, writer);
                    writer = null;
                    return new Proto.SnapshotReceived { Stored = true };
                }
            }
        }
        catch (OperationCanceledException) when (stalled.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            host.Refused(caller, $"a snapshot stream that sent no chunk for {options.Value.SnapshotChunkTimeoutMs} ms");
            throw new RpcException(new Status(StatusCode.DeadlineExceeded, $"no snapshot chunk for {options.Value.SnapshotChunkTimeoutMs} ms; nothing was stored"));
        }
        catch (FormatException error)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, error.Message));
        }
        finally
        {
            writer?.Dispose();
            incoming.Exit();
        }
    }

    public override async Task<Proto.ForwardReply> Forward(Proto.ForwardRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        var caller = Admit(context, PeerCall.Forward);
        if (request.From != caller.Value)
        {
            host.Refused(caller, $"a request forwarded for n{request.From} on {caller}'s call");
            throw new RpcException(new Status(StatusCode.PermissionDenied, "a forwarded request speaks for the node that sends it"));
        }
        var kind = MessageMapper.FromProto(request.Kind)
            ?? throw new RpcException(new Status(StatusCode.InvalidArgument, $"forward kind {request.Kind}: not a kind this node knows; nothing was done"));
        var answer = await host.ExecuteForwardedAsync(new ForwardedRequest(new NodeId(request.From), kind, request.Command.Memory), context.CancellationToken)
            .ConfigureAwait(false);
        return MessageMapper.ToProto(answer);
    }

    public override Task<Proto.HelloReply> Hello(Proto.HelloRequest request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        Admit(context, PeerCall.Hello);
        return Task.FromResult(new Proto.HelloReply());
    }

    public override Task<Proto.MemberAnswer> IsMember(Proto.MemberQuery request, ServerCallContext context)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(context);
        Admit(context, PeerCall.IsMember);
        var answer = host.IsMember(new NodeId(request.Node));
        return Task.FromResult(new Proto.MemberAnswer { Member = answer.Member, Incarnation = answer.Incarnation, Address = answer.Address });
    }

    /// <summary>Hears only peers of this cluster whose data directory is the one it knows; anything else is refused before it is read.</summary>
    private NodeId Admit(ServerCallContext context, PeerCall call)
    {
        if (PeerCredentials.FromHeaders(context.RequestHeaders) is not { } caller)
        {
            host.Refused(NodeId.None, "a call without credentials");
            throw new RpcException(new Status(StatusCode.FailedPrecondition, "a peer call must carry the cluster id, the sender and its incarnation"));
        }
        if (host.PeerCertificatesRequired
            && RaftKv.Contracts.TlsTrust.CommonName(context.GetHttpContext().Connection.ClientCertificate) is var name && name != caller.From.ToString())
        {
            // TLS proved which member is calling; the call must speak for that member and no other.
            var reason = $"the caller's certificate names {name ?? "nobody"}; the call speaks for {caller.From}";
            host.Refused(caller.From, reason);
            throw new RpcException(new Status(StatusCode.FailedPrecondition, reason));
        }
        if (host.Admit(caller.From, caller.Credentials, call) is { } refusal)
        {
            host.Refused(caller.From, refusal.Reason);
            throw new RpcException(new Status(refusal.StatusCode, refusal.Reason));
        }
        // Learned once per stream a peer opens, not on every forwarded request.
        if (call == PeerCall.Stream && PeerCredentials.ClientUrlFrom(context.RequestHeaders) is { } clientUrl)
        {
            host.SawClientUrl(caller.From, clientUrl);
        }
        return caller.From;
    }

    [LoggerMessage(EventId = 211, Level = LogLevel.Warning, Message = "dropped a malformed message from n{From}: {Reason}")]
    private partial void LogMalformed(ulong from, string reason);

    [LoggerMessage(EventId = 212, Level = LogLevel.Information, Message = "received snapshot {Index} from {Leader}; the node installs it or drops it")]
    private partial void LogSnapshotReceived(NodeId leader, ulong index);
}

/// <summary>How many snapshot streams this node is receiving: at most <see cref="TransportOptions.MaxIncomingSnapshots"/>.</summary>
public sealed class IncomingSnapshots(Microsoft.Extensions.Options.IOptions<TransportOptions> options)
{
    private int _receiving;

    public int Receiving => Volatile.Read(ref _receiving);

    public bool TryEnter()
    {
        if (Interlocked.Increment(ref _receiving) <= options.Value.MaxIncomingSnapshots)
        {
            return true;
        }
        Interlocked.Decrement(ref _receiving);
        return false;
    }

    public void Exit() => Interlocked.Decrement(ref _receiving);
}

/// <summary>Wires the peer service into an ASP.NET Core app.</summary>
public static class PeerServiceExtensions
{
    public static Microsoft.AspNetCore.Builder.GrpcServiceEndpointConventionBuilder MapRaftPeerService(this Microsoft.AspNetCore.Routing.IEndpointRouteBuilder endpoints) =>
        Microsoft.AspNetCore.Builder.GrpcEndpointRouteBuilderExtensions.MapGrpcService<RaftPeerService>(endpoints);
}
