# RaftKv server image: built with the .NET 10 SDK, run on the ASP.NET Core 10 runtime as a non-root user.
#   docker build -t raftkv .          (from the repository root; deploy/docker-compose.yml builds it the same way)
# Every setting is an environment variable RaftKv__<Section>__<Name> (docs/configuration.md); docs/deploy.md shows a cluster.
# Not built here: this repository's machines run no container engine (docs/deploy.md says what was and was not run).

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# global.json is left out on purpose: it pins the exact SDK of the developers' machines, and the SDK image carries
# whichever 10.0 SDK is newest; the build settings themselves are in the files copied here.
COPY Directory.Build.props Directory.Build.targets Directory.Packages.props .editorconfig ./
COPY src/ src/
RUN dotnet publish src/RaftKv.Server/RaftKv.Server.csproj -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app ./
# The data directory is a volume owned by the image's non-root user ("app", uid $APP_UID = 1654).
RUN mkdir -p /var/lib/raftkv && chown "$APP_UID:$APP_UID" /var/lib/raftkv
VOLUME /var/lib/raftkv
USER $APP_UID
# A single node by default: clients on 8080 and peers on 9080, on every address. A cluster adds NodeId, Peers and Http
# with the node's own host name (deploy/docker-compose.yml, deploy/k8s/).
ENV RaftKv__Node__DataDir=/var/lib/raftkv \
    RaftKv__Node__Http=http://0.0.0.0:8080 \
    RaftKv__Node__Peer=http://0.0.0.0:9080 \
    ASPNETCORE_HTTP_PORTS=
EXPOSE 8080 9080
# Liveness: /health answers 200 while the process serves (readiness, /health/ready, is for orchestrators that route
# clients). The image has no curl: bash speaks HTTP/1.1 to the client port itself.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
# SIGTERM (docker stop, a pod's termination) makes a leader hand leadership to the most caught-up voter before it exits.
STOPSIGNAL SIGTERM
ENTRYPOINT ["dotnet", "RaftKv.Server.dll"]
