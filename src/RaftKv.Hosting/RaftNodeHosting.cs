using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Prometheus;
using RaftKv.Contracts;
using RaftKv.Hosting.Dashboard;
using RaftKv.Node;
using RaftKv.RaftCore;
using RaftKv.Storage;
using RaftKv.Transport;
using Serilog;
using Serilog.Events;
using Serilog.Formatting.Compact;

namespace RaftKv.Hosting;

/// <summary>What an application tells the runtime: its state machine and its own settings sections.</summary>
public sealed class RaftNodeBuilder
{
    private readonly List<SettingsSection> _sections = [];

    internal RaftNodeBuilder(WebApplicationBuilder builder) => Builder = builder;

    public IServiceCollection Services => Builder.Services;

    public IConfiguration Configuration => Builder.Configuration;

    /// <summary>Every settings section, the runtime's and the application's.</summary>
    public IReadOnlyList<SettingsSection> Sections => _sections;

    internal WebApplicationBuilder Builder { get; }

    internal bool HasStateMachine { get; private set; }

    /// <summary>Binds RaftKv:{<paramref name="name"/>} to <typeparamref name="T"/>, validated at start, settable by environment and command line.</summary>
    public OptionsBuilder<T> AddSettings<T>(string name) where T : class, IValidatedOptions => AddSettings<T>(name, prepare: null);

    internal OptionsBuilder<T> AddSettings<T>(string name, Func<T, T>? prepare) where T : class, IValidatedOptions
    {
        var section = new SettingsSection(name, typeof(T));
        _sections.Add(section);
        var binder = new SectionBinder<T>(section, Configuration);
        Services.AddSingleton<IConfigureOptions<T>>(binder);
        Services.AddSingleton<IValidateOptions<T>>(new SectionValidator<T>(section, binder, prepare));
        return Services.AddOptions<T>().ValidateOnStart();
    }

    /// <summary>The application's state machine: one per node, built once; the runtime applies committed commands to it.</summary>
    public RaftNodeBuilder UseStateMachine<T>(Func<IServiceProvider, T> factory) where T : class, IStateMachine
    {
        ArgumentNullException.ThrowIfNull(factory);
        Services.AddSingleton(factory);
        Services.AddSingleton<IStateMachine>(services => services.GetRequiredService<T>());
        HasStateMachine = true;
        return this;
    }

    /// <summary>The application's requests that only the leader answers (<see cref="IRaftNode.AskLeaderAsync"/>): at most one handler.</summary>
    public RaftNodeBuilder UseLeaderRequests<T>(Func<IServiceProvider, T> factory) where T : class, ILeaderRequestHandler
    {
        ArgumentNullException.ThrowIfNull(factory);
        if (Services.Any(s => s.ServiceType == typeof(ILeaderRequestHandler)))
        {
            throw new InvalidOperationException("UseLeaderRequests: an application has one leader request handler");
        }
        Services.AddSingleton(factory);
        Services.AddSingleton<ILeaderRequestHandler>(services => services.GetRequiredService<T>());
        return this;
    }
}

/// <summary>
/// The node runtime in ASP.NET Core terms: <see cref="AddRaftNode"/> registers the node (a hosted service), its settings,
/// logging, metrics and listeners; <see cref="MapRaftNode"/> maps /status, /health, /health/ready, /metrics and the peer
/// service; <see cref="MapClientGroup"/> gives the application a route group on the client port;
/// <see cref="RunRaftNodeAsync"/> runs it and turns bad settings into one line each and exit code 2.
/// </summary>
public static class RaftNodeHosting
{
    public static RaftNodeBuilder AddRaftNode(this WebApplicationBuilder builder, IReadOnlyList<string> args, Action<RaftNodeBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(configure);
        var node = new RaftNodeBuilder(builder);
        node.AddSettings<NodeOptions>("Node");
        // The core's id comes from RaftKv:Node:NodeId (validated there); the Raft section holds the protocol's bounds.
        node.AddSettings<RaftOptions>("Raft", raft => raft with { Id = new NodeId(1) });
        node.AddSettings<NodeLoopOptions>("Loop");
        node.AddSettings<StorageOptions>("Storage");
        node.AddSettings<TransportOptions>("Transport");
        node.AddSettings<AuthOptions>("Auth");
        node.AddSettings<TlsOptions>("Tls");
        node.Services.AddSingleton<IValidateOptions<NodeOptions>, SchemesMatchTlsValidator>();
        node.Services.AddSingleton<IValidateOptions<TransportOptions>, EntryFitsMessageValidator>();
        configure(node);
        if (!node.HasStateMachine)
        {
            throw new InvalidOperationException("AddRaftNode: the application must name its state machine (UseStateMachine)");
        }
        var switches = RaftConfiguration.SwitchMappings(node.Sections);
        builder.Configuration.AddRaftKvEnvironment();
        builder.Configuration.AddCommandLine([.. args], switches);
        var unknownSwitches = RaftConfiguration.UnknownSwitches(args, switches);
        builder.Services.AddSingleton<IValidateOptions<NodeOptions>>(services =>
            new UnreadSettingsValidator(unknownSwitches, node.Sections, services.GetRequiredService<IConfiguration>()));

        var services = builder.Services;
        services.AddSerilog((provider, logging) =>
        {
            var configuration = provider.GetRequiredService<IConfiguration>();
            logging.MinimumLevel.Information()
                .MinimumLevel.Override("Microsoft.AspNetCore", LogEventLevel.Warning)
                .MinimumLevel.Override("Grpc", LogEventLevel.Warning)
                .MinimumLevel.Override("Microsoft.Extensions.Hosting", LogEventLevel.Warning)
                // "Hosting failed to start" and its stack trace: RunRaftNodeAsync prints one line for each failure it knows
                // (port in use, a data directory of another node or cluster, one that cannot be created), and the runtime
                // prints any other exception whole.
                .MinimumLevel.Override("Microsoft.Extensions.Hosting.Internal.Host", LogEventLevel.Fatal)
                // Off entirely: while this category is enabled at any level, ASP.NET Core gives every request an Activity
                // and a logging scope (8 % of the bytes a leader allocates per write at 64 clients, with the async-local
                // copies they bring) for request logs that the Warning level above drops anyway. Errors in requests are
                // still logged by Kestrel and by this application.
                .MinimumLevel.Override("Microsoft.AspNetCore.Hosting.Diagnostics", LogEventLevel.Fatal + 1)
                .Enrich.FromLogContext()
                .Enrich.WithProperty("node", NodeName(provider, configuration));
            if (configuration[RaftConfiguration.Root + ":Node:LogFormat"] == "json")
            {
                logging.WriteTo.Console(new RenderedCompactJsonFormatter());
            }
            else
            {
                logging.WriteTo.Console(outputTemplate: "{Timestamp:HH:mm:ss.fff} {Level:u3} [{node}] {Message:lj}{NewLine}{Exception}");
            }
        });
        services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(10));
        services.AddSingleton<RaftMetrics>();
        services.AddSingleton<RaftAccess>();
        services.AddSingleton(new RequestHistory(TimeProvider.System));
        services.AddSingleton<RaftNodeHost>();
        services.AddSingleton<IRaftNode>(provider => provider.GetRequiredService<RaftNodeHost>());
        services.AddSingleton<IPeerHost>(provider => provider.GetRequiredService<RaftNodeHost>());
        services.AddHostedService(provider => provider.GetRequiredService<RaftNodeHost>());
        services.AddGrpc();
        services.AddSingleton<IncomingSnapshots>();
        services.AddOptions<Grpc.AspNetCore.Server.GrpcServiceOptions>().Configure<IOptions<TransportOptions>>((grpc, transport) =>
        {
            // The same bound as the peers' sending side.
            grpc.MaxReceiveMessageSize = transport.Value.MaxMessageBytes;
            grpc.MaxSendMessageSize = transport.Value.MaxMessageBytes;
        });
        services.AddRateLimiter(limiter =>
        {
            limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            limiter.OnRejected = (rejected, cancellationToken) =>
            {
                rejected.HttpContext.Response.Headers.RetryAfter = "1";
                var problem = new Contracts.ProblemResponse("urn:raftkv:problem:rate-limited", "Too many requests", 429,
                    "this client address is over RaftKv:Node:RateLimitPerSecond; slow down and retry");
                return new ValueTask(RaftAccess.Problem(problem).ExecuteAsync(rejected.HttpContext));
            };
            limiter.GlobalLimiter = System.Threading.RateLimiting.PartitionedRateLimiter.Create<HttpContext, string>(http =>
            {
                var node = http.RequestServices.GetRequiredService<IOptions<NodeOptions>>().Value;
                // Peers and health checks are never limited: only clients, per address. (Without a limit the middleware is
                // not in the pipeline at all: MapRaftNode.)
                if (http.Request.Path.StartsWithSegments("/health")
                    || (node.SeparatePorts && http.Connection.LocalPort == node.PeerListenUrl.Port) || http.Request.ContentType == "application/grpc")
                {
                    return System.Threading.RateLimiting.RateLimitPartition.GetNoLimiter("unlimited");
                }
                return System.Threading.RateLimiting.RateLimitPartition.GetTokenBucketLimiter(http.Connection.RemoteIpAddress?.ToString() ?? "unknown",
                    _ => new System.Threading.RateLimiting.TokenBucketRateLimiterOptions
                    {
                        TokenLimit = node.RateLimitBurst > 0 ? node.RateLimitBurst : node.RateLimitPerSecond,
                        TokensPerPeriod = node.RateLimitPerSecond,
                        ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                        QueueLimit = 0,
                        AutoReplenishment = true,
                    });
            });
        });
        services.AddHealthChecks().AddCheck<ReadinessCheck>("raft", tags: ["ready"]);
        services.AddOptions<KestrelServerOptions>().Configure<IOptions<NodeOptions>, IOptions<TlsOptions>>((kestrel, options, tlsOptions) =>
        {
            NodeOptions settings;
            TlsOptions tls;
            try
            {
                settings = options.Value; // Kestrel reads its options while the app is built, before anything is validated
                tls = tlsOptions.Value;
            }
            catch (OptionsValidationException)
            {
                return; // reported with every other bad value by RunRaftNodeAsync, before anything listens
            }
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = settings.MaxRequestBodyBytes;
            kestrel.Limits.MaxRequestHeadersTotalSize = settings.MaxRequestHeadersBytes;
            kestrel.Limits.MaxConcurrentConnections = settings.MaxConnections > 0 ? settings.MaxConnections : null;
            if (!tls.Enabled)
            {
                // Cleartext: HTTP/2 needs TLS negotiation for browsers and curl; clients get HTTP/1.1, peers h2c.
                Listen(kestrel, settings.HttpListenUrl, HttpProtocols.Http1, https: null);
                Listen(kestrel, settings.PeerListenUrl, HttpProtocols.Http2, https: null);
                if (settings.Http2ListenUrl is { } http2)
                {
                    // Kestrel 10 cannot tell h2c prior knowledge from HTTP/1.1 on one cleartext port: HTTP/2 clients get a port of their own.
                    Listen(kestrel, http2, HttpProtocols.Http2, https: null);
                }
                return;
            }
            var certificate = tls.LoadCertificate();
            var ca = TlsTrust.LoadCa(tls.CaFile);
            Listen(kestrel, settings.HttpListenUrl, HttpProtocols.Http1AndHttp2, new HttpsConnectionAdapterOptions { ServerCertificate = certificate });
            // Peers: mutual TLS. Only certificates of the cluster CA get a connection; which member it is, the peer service checks.
            Listen(kestrel, settings.PeerListenUrl, HttpProtocols.Http2, new HttpsConnectionAdapterOptions
            {
                ServerCertificate = certificate,
                ClientCertificateMode = ClientCertificateMode.RequireCertificate,
                ClientCertificateValidation = (client, _, _) => TlsTrust.IsSignedBy(client, ca),
            });
        });
        return node;
    }

    /// <summary>
    /// The largest command or query the node takes (from RaftKv:Storage:MaxEntryBytes): a larger one is answered
    /// <see cref="AnswerStatus.TooLarge"/>. An application checks its own largest request against it at start.
    /// </summary>
    public static int MaxCommandBytes(this IServiceProvider services)
    {
        ArgumentNullException.ThrowIfNull(services);
        return RaftNodeHost.MaxCommandBytes(services.GetRequiredService<IOptions<StorageOptions>>().Value);
    }

    /// <summary>The node's own routes: /status, /health, /health/ready and /metrics on the client port, the peer service on the peer port.</summary>
    public static WebApplication MapRaftNode(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var options = app.Services.GetRequiredService<IOptions<NodeOptions>>().Value;
        var metrics = app.Services.GetRequiredService<RaftMetrics>();
        if (options.SeparatePorts)
        {
            app.Use(ListenerPort.Enforce);
        }
        app.UseHttpMetrics(http =>
        {
            http.SetMetricFactory(metrics.Factory);
            // What the dashboards and alerts read is the request count and duration; the in-progress gauge and the
            // exemplars (trace ids) cost a middleware and a lookup on every request, and nothing reads them.
            http.InProgress.Enabled = false;
            http.ConfigureMeasurements(measurement => measurement.ExemplarPredicate = _ => false);
        });
        if (options.RateLimitPerSecond > 0)
        {
            app.UseRateLimiter(); // without a limit the middleware would still take a lease per request
        }
        var history = app.Services.GetRequiredService<RequestHistory>();
        app.UseRequestHistory(history);
        var access = app.Services.GetRequiredService<RaftAccess>();
        if (!access.Options.OpenMetrics)
        {
            // /metrics is not a route handler, so endpoint filters do not run for it: checked here instead.
            app.UseWhen(http => http.Request.Path.StartsWithSegments("/metrics"), branch => branch.Use(async (http, next) =>
            {
                if (access.Check(http, RaftRole.Read) is { } problem)
                {
                    await RaftAccess.Problem(problem).ExecuteAsync(http).ConfigureAwait(false);
                    return;
                }
                await next(http).ConfigureAwait(false);
            }));
        }
        var client = ClientGroup(app, "");
        var status = client.MapGet("/status", StatusEndpoint.GetAsync);
        if (!access.Options.OpenStatus)
        {
            status.RequireRaftRole(RaftRole.Read);
        }
        client.MapHealthChecks("/health", new HealthCheckOptions { Predicate = _ => false, ResponseWriter = ReadinessCheck.WriteAsync });
        client.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains("ready"), ResponseWriter = ReadinessCheck.WriteAsync });
        client.MapMetrics("/metrics", metrics.Registry);
        var host = app.Services.GetRequiredService<RaftNodeHost>();
        ClusterEndpoints.Map(client, host, options.MaxRequestBodyBytes);
        host.LeaderChanged += (_, changed) => history.LeaderChanged(changed.Leader, changed.Term);
        DashboardEndpoints.Map(client, host, history, MembersClient(app.Services.GetRequiredService<IOptions<TlsOptions>>().Value));
        var peer = app.MapRaftPeerService();
        if (options.SeparatePorts)
        {
            peer.WithMetadata(new ListenerPort([options.PeerListenUrl.Port]));
        }
        return app;
    }

    /// <summary>How the dashboard asks the other members for their status: their client port, trusting the cluster CA with TLS on.</summary>
    private static HttpClient MembersClient(TlsOptions tls)
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5), ConnectTimeout = TimeSpan.FromSeconds(1) };
        if (tls.Enabled)
        {
            handler.SslOptions.RemoteCertificateValidationCallback = TlsTrust.ServerValidator(TlsTrust.LoadCa(tls.CaFile));
        }
        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(2) };
    }

    /// <summary>
    /// A route group served on the client port only (the peer port serves peers alone). With client tokens on
    /// (RaftKv:Auth:TokensFile), every route in it needs at least <see cref="RaftRole.Read"/>; a route that changes
    /// something adds <c>.RequireRaftRole(RaftRole.Write)</c> (or checks <see cref="RaftAccess"/> itself).
    /// </summary>
    public static RouteGroupBuilder MapClientGroup(this IEndpointRouteBuilder endpoints, string prefix = "") =>
        ClientGroup(endpoints, prefix).RequireRaftRole(RaftRole.Read);

    private static RouteGroupBuilder ClientGroup(IEndpointRouteBuilder endpoints, string prefix)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var group = endpoints.MapGroup(prefix);
        var options = endpoints.ServiceProvider.GetRequiredService<IOptions<NodeOptions>>().Value;
        if (options.SeparatePorts)
        {
            group.WithMetadata(new ListenerPort(options.ClientListenPorts));
        }
        return group;
    }

    /// <summary>
    /// Maps the routes and runs until the host stops. Bad settings print one line each ("raftkv: RaftKv:Node:TickMs: …")
    /// and return 2; a port in use returns 2; a data directory that cannot be opened returns 3; a broken invariant 70.
    /// </summary>
    public static async Task<int> RunRaftNodeAsync(this WebApplication app, Action<WebApplication> mapRoutes)
    {
        ArgumentNullException.ThrowIfNull(app);
        ArgumentNullException.ThrowIfNull(mapRoutes);
        try
        {
            // Every section at once, so that each bad value is reported, whichever section it is in.
            app.Services.GetService<IStartupValidator>()?.Validate();
            mapRoutes(app);
            await app.RunAsync().ConfigureAwait(false);
            return Environment.ExitCode;
        }
        catch (Exception error) when (ValidationFailures(error) is { Count: > 0 } failures)
        {
            // Every section is validated at start; one failing section throws its own exception, several an aggregate.
            foreach (var failure in failures)
            {
                await Console.Error.WriteLineAsync("raftkv: " + failure).ConfigureAwait(false);
            }
            return 2;
        }
        catch (IOException error) when (error.InnerException is System.Net.Sockets.SocketException || error.Message.Contains("address", StringComparison.OrdinalIgnoreCase))
        {
            await Console.Error.WriteLineAsync("raftkv: cannot listen: " + error.Message).ConfigureAwait(false);
            return 2;
        }
        catch (NodeStartException error)
        {
            await Console.Error.WriteLineAsync("raftkv: " + error.Message).ConfigureAwait(false);
            return 2;
        }
        catch (StorageException error)
        {
            await Console.Error.WriteLineAsync("raftkv: cannot open the data directory: " + error.Message).ConfigureAwait(false);
            return 3;
        }
    }

    private static List<string> ValidationFailures(Exception error) => error switch
    {
        OptionsValidationException invalid => [.. invalid.Failures],
        AggregateException many when many.InnerExceptions.All(e => e is OptionsValidationException) =>
            [.. many.InnerExceptions.Cast<OptionsValidationException>().SelectMany(e => e.Failures)],
        _ => [],
    };

    private static void Listen(KestrelServerOptions kestrel, Uri url, HttpProtocols protocols, HttpsConnectionAdapterOptions? https)
    {
        void Configure(ListenOptions listen)
        {
            listen.Protocols = protocols;
            if (https is not null)
            {
                listen.UseHttps(https);
            }
        }
        if (url.Host is "localhost")
        {
            kestrel.ListenLocalhost(url.Port, Configure);
        }
        else if (url.Host is not ("0.0.0.0" or "*" or "+") && IPAddress.TryParse(url.DnsSafeHost, out var address))
        {
            kestrel.Listen(address, url.Port, Configure);
        }
        else
        {
            // A wildcard, or a host name (what a container platform gives a node): every address. Binding only what the name
            // resolves to would fail in a pod whose DNS record appears only once it is ready.
            kestrel.ListenAnyIP(url.Port, Configure);
        }
    }

    /// <summary>The node id for log lines: the one in force (a StatefulSet pod's comes from its host name), or as configured while the settings are bad.</summary>
    private static string NodeName(IServiceProvider provider, IConfiguration configuration)
    {
        try
        {
            return provider.GetRequiredService<IOptions<NodeOptions>>().Value.Id.ToString();
        }
        catch (OptionsValidationException)
        {
            return configuration[RaftConfiguration.Root + ":Node:NodeId"] ?? "n1";
        }
    }
}

/// <summary>
/// Route metadata: the endpoint is served only on connections to these local ports (the client listeners or the peer
/// listener). The local port, not the Host header's: behind a published container port or a Service, clients write the
/// port they dialled, which need not be the one the node listens on.
/// </summary>
internal sealed class ListenerPort(int[] ports)
{
    private readonly int[] _ports = ports;

    public static Task Enforce(HttpContext http, RequestDelegate next)
    {
        if (http.GetEndpoint()?.Metadata.GetMetadata<ListenerPort>() is { } only && Array.IndexOf(only._ports, http.Connection.LocalPort) < 0)
        {
            http.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        }
        return next(http);
    }
}

/// <summary>One log entry of the largest size must fit in one peer message, or it could be appended and never replicated.</summary>
internal sealed class EntryFitsMessageValidator(IOptions<StorageOptions> storage) : IValidateOptions<TransportOptions>
{
    public ValidateOptionsResult Validate(string? name, TransportOptions options)
    {
        int entry;
        try
        {
            entry = storage.Value.MaxEntryBytes;
        }
        catch (OptionsValidationException)
        {
            return ValidateOptionsResult.Skip; // the storage section is reported on its own
        }
        return (long)entry + RaftNodeHost.MessageFramingBytes <= options.MaxMessageBytes
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"RaftKv:Transport:MaxMessageBytes: {options.MaxMessageBytes} cannot carry an entry of RaftKv:Storage:MaxEntryBytes ({entry}) and its framing ({RaftNodeHost.MessageFramingBytes})");
    }
}
