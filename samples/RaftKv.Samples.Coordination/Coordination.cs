using System.Runtime.CompilerServices;
using RaftKv.Client;
using RaftKv.Contracts;

namespace RaftKv.Samples.Coordination;

/// <summary>
/// A distributed lock that a crashed holder cannot keep. The lock is the key <c>locks/{name}</c>: a transaction creates
/// it only if it does not exist, written with the holder's lease, so it goes when the holder releases it or stops keeping
/// the lease alive (its process died, or it was cut off for a whole TTL). A waiter watches the key from just after the
/// transaction that found it taken, and tries again when it is deleted.
/// </summary>
public static class DistributedLock
{
    public static async Task<Holding> AcquireAsync(RaftKvClient client, string name, string owner, long ttlSeconds,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        var keeper = await client.KeepLeaseAsync(ttlSeconds, cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            return await Holding.TakeAsync(client, "locks/" + name, owner, keeper, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await keeper.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }
}

/// <summary>
/// A leader election: the same key-under-a-lease as the lock (<c>elections/{name}</c>, holding the leader's name), and
/// observers that watch it. A candidate that wins leads until it resigns or its lease is lost; the others wait to win.
/// </summary>
public static class LeaderElection
{
    /// <summary>Waits until <paramref name="candidate"/> leads; it leads until the holding is disposed or <see cref="Holding.Lost"/>.</summary>
    public static async Task<Holding> CampaignAsync(RaftKvClient client, string name, string candidate, long ttlSeconds,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        var keeper = await client.KeepLeaseAsync(ttlSeconds, cancellationToken: cancellationToken).ConfigureAwait(false);
        try
        {
            return await Holding.TakeAsync(client, "elections/" + name, candidate, keeper, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await keeper.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The leader now (null: none), then every change of leader, in order, with none missed.</summary>
    public static async IAsyncEnumerable<string?> ObserveAsync(RaftKvClient client, string name,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(client);
        var key = "elections/" + name;
        var now = await client.GetAsync(key, cancellationToken: cancellationToken).ConfigureAwait(false);
        yield return now.Found ? now.Value : null;
        // The read saw the store at revision now.Index: every later change of the key has a higher revision.
        await foreach (var change in client.WatchAsync(key, fromRevision: now.Index + 1, cancellationToken: cancellationToken).ConfigureAwait(false))
        {
            yield return change.Type == "DELETE" ? null : change.Value;
        }
    }
}

/// <summary>
/// A key held under a lease: a lock held, or an election won. <see cref="Revision"/> (the key's create revision) grows
/// with every holder: a fencing token that a guarded resource can check. <see cref="Lost"/> is cancelled when the lease
/// can no longer be vouched for; the holder must stop acting then. Disposing releases it.
/// </summary>
public sealed class Holding : IAsyncDisposable
{
    private readonly RaftKvClient _client;
    private readonly LeaseKeeper _keeper;

    private Holding(RaftKvClient client, string key, string value, ulong revision, LeaseKeeper keeper)
    {
        _client = client;
        _keeper = keeper;
        Key = key;
        Value = value;
        Revision = revision;
    }

    public string Key { get; }

    public string Value { get; }

    /// <summary>The key's create revision: higher for every later holder.</summary>
    public ulong Revision { get; }

    public ulong LeaseId => _keeper.Id;

    public CancellationToken Lost => _keeper.Lost;

    /// <summary>Completes, with the reason, when <see cref="Lost"/> is cancelled.</summary>
    public Task<LeaseLoss> WhenLost => _keeper.WhenLost;

    /// <summary>Creates <paramref name="key"/> with the keeper's lease, waiting while someone else holds it.</summary>
    internal static async Task<Holding> TakeAsync(RaftKvClient client, string key, string value, LeaseKeeper keeper, CancellationToken cancellationToken)
    {
        using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, keeper.Lost);
        while (true)
        {
            var take = new TxnRequest
            {
                Compare = [new TxnCompare { Key = key, Target = "exists", Exists = false }],
                Success = [new TxnOperation { Type = "PUT", Key = key, Value = value, Lease = keeper.Id }],
                Failure = [new TxnOperation { Type = "GET", Key = key }],
            };
            TxnResponse answer;
            try
            {
                answer = await client.TxnAsync(take, waiting.Token).ConfigureAwait(false);
                if (answer.Succeeded)
                {
                    return new Holding(client, key, value, answer.Results[0].CreateRevision, keeper);
                }
                if (answer.LeaseNotFound)
                {
                    throw new InvalidOperationException($"the lease {keeper.Id} ended before {key} was taken");
                }
                // Taken: wait for the key's deletion (a release, a revoke or an expiry) after the revision that saw it.
                await foreach (var change in client.WatchAsync(key, fromRevision: answer.Index + 1, cancellationToken: waiting.Token).ConfigureAwait(false))
                {
                    if (change.Type == "DELETE")
                    {
                        break;
                    }
                }
            }
            catch (OperationCanceledException) when (keeper.Lost.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new InvalidOperationException($"the lease {keeper.Id} was lost while waiting for {key}");
            }
        }
    }

    /// <summary>Releases: deletes the key if it is still this holding's (same create revision), then revokes the lease.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            var release = new TxnRequest
            {
                Compare = [new TxnCompare { Key = Key, Target = "createRevision", CreateRevision = Revision }],
                Success = [new TxnOperation { Type = "DELETE", Key = Key }],
            };
            using var bounded = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await _client.TxnAsync(release, bounded.Token).ConfigureAwait(false);
        }
        catch (Exception error) when (error is OperationCanceledException or RaftKvException)
        {
            // The revoke below deletes the key too; failing that, the lease expires a TTL after its last keepalive.
        }
        await _keeper.DisposeAsync().ConfigureAwait(false);
    }
}
