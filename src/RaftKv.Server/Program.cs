using System.Net;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;
using Prometheus;
using RaftKv.Server;
using RaftKv.Transport;
using Serilog;
using Serilog.Events;
using Serilog.Formatting.Compact;

// A RaftKv node. With no arguments: a single-node cluster on 127.0.0.1:8080 with ./data.
// A cluster: --node-id n1 --peers n1=http://127.0.0.1:9081,n2=...,n3=... --http http://127.0.0.1:8081 --data-dir data/n1

// The content root is the server's own folder, not the current directory: configuration reloading watches the content
// root, and a data directory inside it would turn every log append into file-watcher events.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Configuration.AddEnvironmentVariables("RAFTKV__");
builder.Configuration.AddCommandLine(args, ServerOptions.SwitchMappings());

ServerOptions options;
try
{
    options = builder.Configuration.GetSection(ServerOptions.Section).Get<ServerOptions>() ?? new ServerOptions();
}
catch (InvalidOperationException error)
{
    Console.Error.WriteLine("raftkv: bad configuration: " + (error.InnerException?.Message ?? error.Message));
    return 2;
}
var validation = new ServerOptionsValidator().Validate(null, options);
if (validation.Failed)
{
    foreach (var failure in validation.Failures)
    {
        Console.Error.WriteLine("raftkv: " + failure);
    }
    return 2;
}

return await Server.RunAsync(builder, options).ConfigureAwait(false);

namespace RaftKv.Server
{
    public static class Server
    {
        public static async Task<int> RunAsync(WebApplicationBuilder builder, ServerOptions options)
        {
            ArgumentNullException.ThrowIfNull(builder);
            ArgumentNullException.ThrowIfNull(options);
            Configure(builder, options);
            var app = builder.Build();
            MapEndpoints(app);
            try
            {
                await app.RunAsync().ConfigureAwait(false);
                return Environment.ExitCode;
            }
            catch (IOException error) when (error.InnerException is System.Net.Sockets.SocketException || error.Message.Contains("address", StringComparison.OrdinalIgnoreCase))
            {
                Console.Error.WriteLine("raftkv: cannot listen: " + error.Message);
                return 2;
            }
            catch (RaftKv.RaftCore.StorageException error)
            {
                Console.Error.WriteLine("raftkv: cannot open the data directory: " + error.Message);
                return 3;
            }
        }

        /// <summary>Services, logging and listeners. Shared with the in-process tests.</summary>
        public static void Configure(WebApplicationBuilder builder, ServerOptions options)
        {
            ArgumentNullException.ThrowIfNull(builder);
            ArgumentNullException.ThrowIfNull(options);
            builder.Services.AddOptions<ServerOptions>().Bind(builder.Configuration.GetSection(ServerOptions.Section)).ValidateOnStart();
            builder.Services.AddSingleton<IValidateOptions<ServerOptions>, ServerOptionsValidator>();
            builder.Services.AddSerilog((_, logging) =>
            {
                logging.MinimumLevel.Information()
                    .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
                    .MinimumLevel.Override("Grpc", LogEventLevel.Warning)
                    .MinimumLevel.Override("Microsoft.Extensions.Hosting", LogEventLevel.Warning)
                    .Enrich.FromLogContext()
                    .Enrich.WithProperty("node", options.NodeId);
                if (options.LogFormat == "json")
                {
                    logging.WriteTo.Console(new RenderedCompactJsonFormatter());
                }
                else
                {
                    logging.WriteTo.Console(outputTemplate: "{Timestamp:HH:mm:ss.fff} {Level:u3} [{node}] {Message:lj}{NewLine}{Exception}");
                }
            });
            builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(10));
            builder.Services.AddSingleton<RaftMetrics>();
            builder.Services.AddSingleton<NodeHost>();
            builder.Services.AddSingleton<IPeerHost>(services => services.GetRequiredService<NodeHost>());
            builder.Services.AddHostedService(services => services.GetRequiredService<NodeHost>());
            builder.Services.AddSingleton<KvExecutor>();
            builder.Services.AddGrpc(grpc =>
            {
                // The same bound as the peers' sending side (NodeHost's TransportOptions).
                grpc.MaxReceiveMessageSize = NodeHost.TransportSettings.MaxMessageBytes;
                grpc.MaxSendMessageSize = NodeHost.TransportSettings.MaxMessageBytes;
            });
            builder.Services.AddHealthChecks().AddCheck<ReadinessCheck>("raft", tags: ["ready"]);
            builder.WebHost.ConfigureKestrel(kestrel =>
            {
                kestrel.AddServerHeader = false;
                kestrel.Limits.MaxRequestBodySize = options.MaxRequestBodyBytes;
                // Cleartext: HTTP/2 needs TLS negotiation for browsers and curl; clients get HTTP/1.1, peers h2c.
                Listen(kestrel, options.HttpUrl, HttpProtocols.Http1);
                Listen(kestrel, options.PeerUrl, HttpProtocols.Http2);
            });
        }

        /// <summary>Client API and metrics on the client port; the peer service on the peer port.</summary>
        public static void MapEndpoints(WebApplication app)
        {
            ArgumentNullException.ThrowIfNull(app);
            var options = app.Services.GetRequiredService<IOptions<ServerOptions>>().Value;
            var enforcePorts = options.SeparatePorts;
            var metrics = app.Services.GetRequiredService<RaftMetrics>();
            app.UseHttpMetrics(http => http.SetMetricFactory(metrics.Factory));
            var clientHost = $"*:{options.HttpUrl.Port}";
            var peerHost = $"*:{options.PeerUrl.Port}";
            void Client(IEndpointConventionBuilder endpoint)
            {
                if (enforcePorts)
                {
                    endpoint.RequireHost(clientHost);
                }
            }
            app.MapClientApi(Client);
            Client(app.MapHealthChecks("/health", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = ReadinessCheck.WriteAsync }));
            Client(app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains("ready"), ResponseWriter = ReadinessCheck.WriteAsync }));
            Client(app.MapMetrics("/metrics", metrics.Registry));
            var peer = app.MapRaftPeerService();
            if (enforcePorts)
            {
                peer.RequireHost(peerHost);
            }
        }

        private static void Listen(KestrelServerOptions kestrel, Uri url, HttpProtocols protocols)
        {
            if (url.Host is "localhost")
            {
                kestrel.ListenLocalhost(url.Port, listen => listen.Protocols = protocols);
            }
            else if (url.Host is "0.0.0.0" or "*" or "+")
            {
                kestrel.ListenAnyIP(url.Port, listen => listen.Protocols = protocols);
            }
            else
            {
                kestrel.Listen(IPAddress.Parse(url.Host), url.Port, listen => listen.Protocols = protocols);
            }
        }
    }
}

/// <summary>The entry point, visible to the in-process tests (WebApplicationFactory).</summary>
public partial class Program;
