using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace RaftKv.Server.Tests;

/// <summary>A single-node cluster in this process (WebApplicationFactory over the real Program), on a temporary data directory.</summary>
public sealed class ServerFixture : WebApplicationFactory<Program>
{
    public string DataDirectory { get; } = Path.Combine(Path.GetTempPath(), "raftkv-server-test-" + Guid.NewGuid().ToString("N"));

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.UseSetting("RaftKv:Node:DataDir", DataDirectory);
        builder.UseSetting("RaftKv:Node:SeparatePorts", "false");
        builder.UseSetting("RaftKv:Node:TickMs", "10");
        // A short watch history, so that a test can run past it (WatchApiTests).
        builder.UseSetting("RaftKv:Kv:WatchHistoryEvents", "64");
    }

    /// <summary>A client once the node has elected itself and can serve linearizable requests.</summary>
    public async Task<HttpClient> ReadyClientAsync()
    {
        var client = CreateClient();
        for (var attempt = 0; attempt < 500; attempt++)
        {
            var ready = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
            if (ready.IsSuccessStatusCode)
            {
                return client;
            }
            await Task.Delay(10);
        }
        throw new TimeoutException("the node did not become ready");
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing && Directory.Exists(DataDirectory))
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
    }
}

internal static class Http
{
    public static StringContent Json(string json) => new(json, System.Text.Encoding.UTF8, "application/json");

    public static async Task<JsonElement> BodyAsync(this HttpResponseMessage response) =>
        await response.Content.ReadFromJsonAsync<JsonElement>();

    public static Uri Url(string path) => new(path, UriKind.Relative);
}
