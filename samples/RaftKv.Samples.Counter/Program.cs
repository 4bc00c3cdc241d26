using RaftKv.Hosting;
using RaftKv.Samples.Counter;

// A replicated counter on the RaftKv node runtime: the same runtime as the key-value store, with another state machine
// and other routes, and not one line of the runtime changed for it. It takes every RaftKv:Node/Raft/Loop/Storage/Transport
// setting (docs/configuration.md); for example, three nodes:
//   dotnet run --project samples/RaftKv.Samples.Counter -- --node-id n1 --peers n1=http://127.0.0.1:9081,n2=...,n3=... \
//     --http http://127.0.0.1:8081 --data-dir data/n1
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddRaftNode(args, node => node.UseStateMachine(_ => new CounterStateMachine()));
var app = builder.Build();
return await app.RunRaftNodeAsync(routes => routes.MapRaftNode().MapCounterApi()).ConfigureAwait(false);
