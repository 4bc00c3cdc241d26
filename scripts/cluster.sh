#!/usr/bin/env bash
# A local 3-node RaftKv cluster in the background, for trying things out.
#   scripts/cluster.sh start [--tls]   build once, start n1..n3 (clients: 127.0.0.1:8081-8083, HTTP/2 clients (prior
#                                      knowledge, raft-cli --http2): 8181-8183, peers: 9081-9083); with
#                                      --tls (or RAFTKV_CLUSTER_TLS=1): a CA and node certificates in $dir/certs (raft-cli
#                                      certs), HTTPS for clients, mutual TLS for peers, and a write token in $dir/token
#                                      (use: raft-cli --cacert $dir/certs/ca.pem --token "$(cat $dir/token)" ...)
#   scripts/cluster.sh status   show each node's role and term
#   scripts/cluster.sh stop     stop them with SIGTERM (graceful: the leader hands off first)
# Data and logs go to .cluster/ (RAFTKV_CLUSTER_DIR); RAFTKV_CLUSTER_PORT moves the ports (default 8081, peers +1000).
set -euo pipefail
cd "$(dirname "$0")/.."

dir="${RAFTKV_CLUSTER_DIR:-.cluster}"
base="${RAFTKV_CLUSTER_PORT:-8081}"
size=3
config="${RAFTKV_CLUSTER_CONFIGURATION:-Release}"
server="src/RaftKv.Server/bin/$config/net10.0/RaftKv.Server.dll"
cli="src/RaftKv.Cli/bin/$config/net10.0/raft-cli.dll"
tls="${RAFTKV_CLUSTER_TLS:-0}"
[ "${2:-}" = "--tls" ] && tls=1
scheme=http
[ "$tls" = "1" ] && scheme=https
curl_tls=()
[ "$tls" = "1" ] && curl_tls=(--cacert "$dir/certs/ca.pem")

peers() {
  local list=""
  for i in $(seq 1 $size); do list="${list:+$list,}n$i=$scheme://127.0.0.1:$((base + 1000 + i - 1))"; done
  echo "$list"
}

start() {
  if ls "$dir"/n*.pid >/dev/null 2>&1; then
    echo "a cluster is already running (see $dir); stop it first" >&2
    exit 1
  fi
  if [ "${RAFTKV_CLUSTER_SKIP_BUILD:-}" != "1" ]; then
    dotnet build -c "$config" src/RaftKv.Server -v quiet -nologo >/dev/null
  fi
  mkdir -p "$dir"
  local secure=()
  if [ "$tls" = "1" ]; then
    if [ "${RAFTKV_CLUSTER_SKIP_BUILD:-}" != "1" ]; then
      dotnet build -c "$config" src/RaftKv.Cli -v quiet -nologo >/dev/null
    fi
    if [ ! -e "$dir/certs/ca.pem" ]; then
      dotnet exec "$cli" certs init --dir "$dir/certs" >/dev/null
      for i in $(seq 1 $size); do dotnet exec "$cli" certs node "n$i" --host 127.0.0.1 --dir "$dir/certs" >/dev/null; done
      made=$(dotnet exec "$cli" --output json token new cluster-sh --role write)
      echo "$made" | python3 -c 'import json,sys; print(json.load(sys.stdin)["line"])' >"$dir/tokens"
      echo "$made" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' >"$dir/token"
    fi
  fi
  for i in $(seq 1 $size); do
    if [ "$tls" = "1" ]; then
      secure=(--cert-file "$dir/certs/n$i.pem" --key-file "$dir/certs/n$i-key.pem" --ca-file "$dir/certs/ca.pem" --tokens-file "$dir/tokens")
    else
      secure=(--listen-http2 "http://127.0.0.1:$((base + 100 + i - 1))") # with TLS the client port negotiates HTTP/2 itself
    fi
    nohup dotnet exec "$server" --node-id "n$i" --peers "$(peers)" \
      --http "$scheme://127.0.0.1:$((base + i - 1))" --data-dir "$dir/data/n$i" "${secure[@]}" \
      >"$dir/n$i.log" 2>&1 &
    echo $! >"$dir/n$i.pid"
  done
  for i in $(seq 1 $size); do
    for _ in $(seq 1 100); do
      curl -sf "${curl_tls[@]}" "$scheme://127.0.0.1:$((base + i - 1))/health" >/dev/null 2>&1 && break
      sleep 0.1
    done
  done
  echo "started n1..n$size: clients on $scheme://127.0.0.1:$base-$((base + size - 1)), logs in $dir/"
}

status() {
  for i in $(seq 1 $size); do
    printf 'n%s  ' "$i"
    curl -s --max-time 2 "${curl_tls[@]}" "$scheme://127.0.0.1:$((base + i - 1))/status" | sed -E 's/.*"role":"([A-Za-z]+)","term":([0-9]+),("leader":"([a-z0-9]+)")?.*/\1 term \2 leader \4/' || echo "down"
    echo
  done
}

stop() {
  for pidfile in "$dir"/n*.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$pidfile"
  done
  echo "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start [--tls]|status|stop" >&2; exit 2 ;;
esac
