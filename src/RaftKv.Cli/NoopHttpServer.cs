using System.Buffers;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace RaftKv.Cli;

/// <summary>
/// The benchmark's do-nothing baseline: an HTTP/1.1 responder on raw sockets that answers POST /command and GET /status
/// with fixed bodies at once, to show what the load generator can drive by itself. Keep-alive and pipelining; bodies
/// are read and discarded by Content-Length (chunked requests get 411); headers are bounded by <see cref="BufferSize"/>
/// and open connections by <see cref="MaxConnections"/> (by default). Not a general HTTP server: no Date header, no
/// chunked bodies, anything but POST /command and GET /status is 404.
/// </summary>
internal sealed class NoopHttpServer : IAsyncDisposable
{
    /// <summary>The per-connection buffer, and so the most a request line with its headers may take.</summary>
    public const int BufferSize = 16 * 1024;

    /// <summary>Connections served at once by default; more are closed as soon as they are accepted.</summary>
    public const int MaxConnections = 1024;

    /// <summary>The answer to POST /command.</summary>
    private static readonly byte[] CommandBody = """{"ok":true,"value":"x","found":true,"version":1,"index":1,"term":1,"leader":"n1"}"""u8.ToArray();

    /// <summary>The answer to GET /status: a single-node cluster whose leader is n1.</summary>
    private static readonly byte[] StatusBody = """{"nodeId":"n1","role":"Leader","term":1,"leader":"n1","commit":1,"applied":1,"lastIndex":1,"firstIndex":1,"snapshotIndex":0,"voters":["n1"],"storage":{"failed":false,"walBytes":0,"segments":0,"pendingProposals":0,"droppedInboxMessages":0},"peers":[]}"""u8.ToArray();

    private static readonly Response Command = new("200 OK", "Content-Type: application/json\r\nX-Raft-Leader: n1\r\n", CommandBody);
    private static readonly Response Status = new("200 OK", "Content-Type: application/json\r\n", StatusBody);
    private static readonly Response NotFound = new("404 Not Found", "", []);
    private static readonly byte[] BadRequest = new Response("400 Bad Request", "", []).Close;
    private static readonly byte[] LengthRequired = new Response("411 Length Required", "", []).Close;
    private static readonly byte[] HeadersTooLarge = new Response("431 Request Header Fields Too Large", "", []).Close;
    private static readonly byte[] Continue = "HTTP/1.1 100 Continue\r\n\r\n"u8.ToArray();

    private readonly Socket _listener;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<Connection, byte> _connections = new();
    private readonly Task _acceptLoop;
    private readonly int _maxConnections;
    private int _open;
    private long _accepted;
    private int _disposed;

    private NoopHttpServer(Socket listener, int maxConnections)
    {
        _listener = listener;
        _maxConnections = maxConnections;
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        Address = new Uri($"http://127.0.0.1:{port}");
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>Where it listens: http://127.0.0.1 on a port the OS chose.</summary>
    public Uri Address { get; }

    /// <summary>Connections accepted and served so far (not counting those refused for being over the limit).</summary>
    public long ConnectionsAccepted => Interlocked.Read(ref _accepted);

    /// <summary>Listens on 127.0.0.1, on a port the OS chooses, and serves until disposed.</summary>
    public static NoopHttpServer Start(int maxConnections = MaxConnections)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConnections, 1);
        var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            listener.Listen(512);
            return new NoopHttpServer(listener, maxConnections);
        }
        catch
        {
            listener.Dispose();
            throw;
        }
    }

    /// <summary>Stops accepting, closes every connection and waits until each has ended.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        // The accept loop has ended, so every connection in the set has its task.
        var connections = _connections.Keys.ToList();
        foreach (var connection in connections)
        {
            connection.Socket.Dispose();
        }
        await Task.WhenAll(connections.Select(c => c.Serving!)).ConfigureAwait(false);
        _stopping.Dispose();
    }

    private async Task AcceptLoopAsync()
    {
        var stopping = _stopping.Token;
        while (!stopping.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await _listener.AcceptAsync(stopping).ConfigureAwait(false);
            }
            catch (Exception error) when (error is OperationCanceledException or ObjectDisposedException || stopping.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                // A connection reset before it was accepted, or out of descriptors for a moment: keep accepting.
                await Task.Delay(1, CancellationToken.None).ConfigureAwait(false);
                continue;
            }
            if (Interlocked.Increment(ref _open) > _maxConnections)
            {
                Interlocked.Decrement(ref _open);
                socket.Dispose();
                continue;
            }
            Interlocked.Increment(ref _accepted);
            socket.NoDelay = true;
            var connection = new Connection(socket);
            _connections.TryAdd(connection, 0);
            connection.Serving = Task.Run(() => ServeAsync(connection), CancellationToken.None);
        }
    }

    private async Task ServeAsync(Connection connection)
    {
        var socket = connection.Socket;
        var stopping = _stopping.Token;
        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        var weClose = false; // whether the server ends the connection (Connection: close, or an error answer)
        try
        {
            // buffer[start..end) holds what was received and not yet consumed; pipelined requests wait there.
            int start = 0, end = 0;
            while (true)
            {
                int headerLength;
                while ((headerLength = buffer.AsSpan(start, end - start).IndexOf("\r\n\r\n"u8)) < 0)
                {
                    if (end - start >= BufferSize)
                    {
                        weClose = true;
                        await SendAsync(socket, HeadersTooLarge, stopping).ConfigureAwait(false);
                        return;
                    }
                    if (start == end)
                    {
                        start = end = 0;
                    }
                    else if (end == BufferSize)
                    {
                        buffer.AsSpan(start, end - start).CopyTo(buffer);
                        end -= start;
                        start = 0;
                    }
                    var received = await socket.ReceiveAsync(buffer.AsMemory(end, BufferSize - end), SocketFlags.None, stopping).ConfigureAwait(false);
                    if (received == 0)
                    {
                        return; // the client closed: between requests that is the normal end
                    }
                    end += received;
                }

                var request = Parse(buffer.AsSpan(start, headerLength));
                start += headerLength + 4;
                if (request.Error is { } error)
                {
                    weClose = true;
                    await SendAsync(socket, error, stopping).ConfigureAwait(false);
                    return;
                }

                // Discard exactly Content-Length body bytes: first what is already buffered, then what is still to come.
                var remaining = request.ContentLength;
                var buffered = (int)Math.Min(remaining, end - start);
                start += buffered;
                remaining -= buffered;
                if (remaining > 0 && request.ExpectsContinue)
                {
                    await SendAsync(socket, Continue, stopping).ConfigureAwait(false);
                }
                while (remaining > 0)
                {
                    var received = await socket.ReceiveAsync(buffer.AsMemory(0, (int)Math.Min(remaining, BufferSize)), SocketFlags.None, stopping).ConfigureAwait(false);
                    if (received == 0)
                    {
                        return; // closed in the middle of a body: nothing to answer
                    }
                    remaining -= received;
                }
                if (start == end)
                {
                    start = end = 0;
                }

                var response = request.Route switch
                {
                    Route.Command => Command,
                    Route.Status => Status,
                    _ => NotFound,
                };
                weClose = !request.KeepAlive;
                await SendAsync(socket, request.KeepAlive ? response.KeepAlive : response.Close, stopping).ConfigureAwait(false);
                if (weClose)
                {
                    return;
                }
            }
        }
        catch (Exception error) when (error is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The client went away, or the server is stopping.
        }
        finally
        {
            if (weClose && !stopping.IsCancellationRequested)
            {
                await CloseGracefullyAsync(socket, buffer, stopping).ConfigureAwait(false);
            }
            socket.Dispose();
            ArrayPool<byte>.Shared.Return(buffer);
            _connections.TryRemove(connection, out _);
            Interlocked.Decrement(ref _open);
        }
    }

    /// <summary>Sends all of <paramref name="bytes"/>: in one call, unless the kernel takes only part of it.</summary>
    private static async ValueTask SendAsync(Socket socket, byte[] bytes, CancellationToken cancellationToken)
    {
        var sent = 0;
        while (sent < bytes.Length)
        {
            sent += await socket.SendAsync(bytes.AsMemory(sent), SocketFlags.None, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Half-closes, then reads and drops what the client still sends (for at most a second, up to 1 MiB) until it closes
    /// too: closing with unread input would reset the connection, and the client could lose the last answer.
    /// </summary>
    private static async Task CloseGracefullyAsync(Socket socket, byte[] buffer, CancellationToken stopping)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Send);
            using var patience = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            patience.CancelAfter(TimeSpan.FromSeconds(1));
            var drained = 0;
            int received;
            while (drained < 1024 * 1024
                && (received = await socket.ReceiveAsync(buffer.AsMemory(0, BufferSize), SocketFlags.None, patience.Token).ConfigureAwait(false)) > 0)
            {
                drained += received;
            }
        }
        catch (Exception error) when (error is SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // Reset, closed, or out of patience: close anyway.
        }
    }

    /// <summary>
    /// Reads the request line and headers (without the final empty line): where to route it, the body length, whether
    /// the connection stays open; or the error answer that ends the connection.
    /// </summary>
    private static Request Parse(ReadOnlySpan<byte> head)
    {
        var lineEnd = head.IndexOf("\r\n"u8);
        var requestLine = lineEnd < 0 ? head : head[..lineEnd];
        var headers = lineEnd < 0 ? [] : head[(lineEnd + 2)..];

        // METHOD SP request-target SP HTTP-version
        var firstSpace = requestLine.IndexOf((byte)' ');
        var lastSpace = requestLine.LastIndexOf((byte)' ');
        if (firstSpace <= 0 || lastSpace <= firstSpace + 1)
        {
            return Request.Failed(BadRequest);
        }
        var method = requestLine[..firstSpace];
        var target = requestLine[(firstSpace + 1)..lastSpace];
        var version = requestLine[(lastSpace + 1)..];
        bool keepAlive;
        if (version.SequenceEqual("HTTP/1.1"u8))
        {
            keepAlive = true;
        }
        else if (version.SequenceEqual("HTTP/1.0"u8))
        {
            keepAlive = false;
        }
        else
        {
            return Request.Failed(BadRequest);
        }
        var query = target.IndexOf((byte)'?');
        var path = query < 0 ? target : target[..query];
        var route = method.SequenceEqual("POST"u8) && path.SequenceEqual("/command"u8) ? Route.Command
            : method.SequenceEqual("GET"u8) && path.SequenceEqual("/status"u8) ? Route.Status
            : Route.None;

        long contentLength = 0;
        var sawContentLength = false;
        var expectsContinue = false;
        while (!headers.IsEmpty)
        {
            var next = headers.IndexOf("\r\n"u8);
            var line = next < 0 ? headers : headers[..next];
            headers = next < 0 ? [] : headers[(next + 2)..];
            var colon = line.IndexOf((byte)':');
            if (colon <= 0)
            {
                return Request.Failed(BadRequest);
            }
            var name = line[..colon];
            var value = Trim(line[(colon + 1)..]);
            if (Ascii.EqualsIgnoreCase(name, "Content-Length"u8))
            {
                if (!TryParseLength(value, out var length) || (sawContentLength && length != contentLength))
                {
                    return Request.Failed(BadRequest);
                }
                contentLength = length;
                sawContentLength = true;
            }
            else if (Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8))
            {
                // Only Content-Length bodies here (the RaftKv client sends them).
                return Request.Failed(LengthRequired);
            }
            else if (Ascii.EqualsIgnoreCase(name, "Connection"u8))
            {
                foreach (var range in value.Split((byte)','))
                {
                    var option = Trim(value[range]);
                    if (Ascii.EqualsIgnoreCase(option, "close"u8))
                    {
                        keepAlive = false;
                    }
                    else if (Ascii.EqualsIgnoreCase(option, "keep-alive"u8) && version.SequenceEqual("HTTP/1.0"u8))
                    {
                        keepAlive = true;
                    }
                }
            }
            else if (Ascii.EqualsIgnoreCase(name, "Expect"u8))
            {
                expectsContinue = Ascii.EqualsIgnoreCase(value, "100-continue"u8);
            }
        }
        return new Request(route, contentLength, keepAlive, expectsContinue, null);
    }

    private static ReadOnlySpan<byte> Trim(ReadOnlySpan<byte> text) => text[Ascii.Trim(text)];

    private static bool TryParseLength(ReadOnlySpan<byte> digits, out long length)
    {
        length = 0;
        if (digits.IsEmpty || digits.Length > 15)
        {
            return false;
        }
        foreach (var digit in digits)
        {
            if (digit is < (byte)'0' or > (byte)'9')
            {
                return false;
            }
            length = (length * 10) + (digit - '0');
        }
        return true;
    }

    private enum Route
    {
        None,
        Command,
        Status,
    }

    /// <summary>What the server needs of a request; <see cref="Error"/>, if set, is the answer before closing.</summary>
    private readonly record struct Request(Route Route, long ContentLength, bool KeepAlive, bool ExpectsContinue, byte[]? Error)
    {
        public static Request Failed(byte[] answer) => new(Route.None, 0, false, false, answer);
    }

    /// <summary>One answer, encoded once, with and without Connection: close.</summary>
    private sealed class Response(string status, string headers, byte[] body)
    {
        public byte[] KeepAlive { get; } = Encode(status, headers, body, close: false);

        public byte[] Close { get; } = Encode(status, headers, body, close: true);

        private static byte[] Encode(string status, string headers, byte[] body, bool close)
        {
            var head = $"HTTP/1.1 {status}\r\n{headers}Content-Length: {body.Length}\r\n{(close ? "Connection: close\r\n" : "")}\r\n";
            return [.. Encoding.ASCII.GetBytes(head), .. body];
        }
    }

    private sealed class Connection(Socket socket)
    {
        public Socket Socket { get; } = socket;

        public Task? Serving { get; set; }
    }
}
