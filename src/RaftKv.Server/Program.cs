using RaftKv.Hosting;
using RaftKv.Server;

// A RaftKv node serving the key-value store. With no arguments: a single-node cluster on 127.0.0.1:8080 with ./data.
// A cluster: --node-id n1 --peers n1=http://127.0.0.1:9081,n2=...,n3=... --http http://127.0.0.1:8081 --data-dir data/n1
// Every setting: docs/configuration.md.

// The content root is the server's own folder, not the current directory: configuration reloading watches the content
// root, and a data directory inside it would turn every log append into file-watcher events.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddRaftNode(args, node => node.AddKvStore());
var app = builder.Build();
return await app.RunRaftNodeAsync(routes => routes.MapRaftNode().MapKvApi()).ConfigureAwait(false);

/// <summary>The entry point, visible to the in-process tests (WebApplicationFactory).</summary>
public partial class Program;
