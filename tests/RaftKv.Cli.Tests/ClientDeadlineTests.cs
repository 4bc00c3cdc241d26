using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using RaftKv.Client;

namespace RaftKv.Cli.Tests;

/// <summary>
/// An operation ends at the client's Timeout, retries included, even when one attempt alone may take longer: each attempt
/// waits for the sooner of its own AttemptTimeout and what is left of the operation. Spoken to a node on loopback that
/// takes connections and never answers.
/// </summary>
public sealed class ClientDeadlineTests
{
    [Fact]
    public async Task A_read_from_a_node_that_never_answers_ends_at_the_operations_timeout_not_the_attempts()
    {
        using var silent = SilentNode.Start();
        using var client = new RaftKvClient(new RaftKvClientOptions
        {
            Endpoints = [silent.Address],
            Timeout = TimeSpan.FromSeconds(1),
            AttemptTimeout = TimeSpan.FromSeconds(20),
            MaxAttempts = 3,
        });
        var clock = Stopwatch.StartNew();

        var act = () => client.GetAsync("k").WaitAsync(TimeSpan.FromSeconds(30));

        (await act.Should().ThrowAsync<ClusterUnavailableException>()).WithMessage("*no answer in time*");
        clock.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(10), "the 1 s operation ends long before one 20 s attempt would");
        silent.Connections.Should().BeGreaterThan(0, "the request reached the node");
    }

    [Fact]
    public async Task A_write_to_a_node_that_never_answers_is_tried_again_until_the_timeout_and_reported_unknown()
    {
        using var silent = SilentNode.Start();
        using var client = new RaftKvClient(new RaftKvClientOptions
        {
            Endpoints = [silent.Address],
            Timeout = TimeSpan.FromSeconds(3),
            AttemptTimeout = TimeSpan.FromMilliseconds(300),
            MaxAttempts = 100,
            RetryBaseDelay = TimeSpan.FromMilliseconds(10),
            RetryMaxDelay = TimeSpan.FromMilliseconds(20),
        });

        var act = () => client.SetAsync("k", "v").WaitAsync(TimeSpan.FromSeconds(30));

        await act.Should().ThrowAsync<OutcomeUnknownException>();
        silent.Connections.Should().BeGreaterThan(1, "an attempt that timed out is followed by another while time is left");
    }

    /// <summary>Accepts connections and reads what comes, never answering; closes them when disposed.</summary>
    private sealed class SilentNode : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly List<TcpClient> _accepted = [];
        private readonly CancellationTokenSource _stop = new();
        private int _connections;

        private SilentNode()
        {
            _listener.Start();
            Address = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");
            _ = Task.Run(AcceptAsync);
        }

        public Uri Address { get; }

        public int Connections => Volatile.Read(ref _connections);

        public static SilentNode Start() => new();

        private async Task AcceptAsync()
        {
            try
            {
                while (true)
                {
                    var connection = await _listener.AcceptTcpClientAsync(_stop.Token);
                    Interlocked.Increment(ref _connections);
                    lock (_accepted)
                    {
                        _accepted.Add(connection);
                    }
                    _ = DrainAsync(connection);
                }
            }
            catch (OperationCanceledException)
            {
                // Disposed.
            }
            catch (ObjectDisposedException)
            {
                // Disposed.
            }
        }

        private async Task DrainAsync(TcpClient connection)
        {
            var buffer = new byte[4096];
            try
            {
                while (await connection.GetStream().ReadAsync(buffer, _stop.Token) > 0)
                {
                }
            }
            catch (Exception error) when (error is OperationCanceledException or IOException or ObjectDisposedException)
            {
                // Closed.
            }
        }

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Stop();
            lock (_accepted)
            {
                foreach (var connection in _accepted)
                {
                    connection.Dispose();
                }
            }
            _stop.Dispose();
        }
    }
}
