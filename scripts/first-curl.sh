#!/usr/bin/env bash
# The README's first run, timed: scripts/first-curl.sh CHECKOUT (built with `dotnet build src/RaftKv.Server`) starts
# `dotnet run --project src/RaftKv.Server` there, waits for "Now listening on: http://127.0.0.1:8080", curls the README's first
# SET every 5 ms until it answers 200 (at most 2 s), prints how long that took and where the data went, and stops the server.
cd "$1"
rm -rf data src/RaftKv.Server/data
dotnet run --no-build --project src/RaftKv.Server > /tmp/firstcurl-run.log 2>&1 &
pid=$!
for i in $(seq 1 400); do grep -q "Now listening on: http://127.0.0.1:8080" /tmp/firstcurl-run.log && break; sleep 0.01; done
t0=$(date +%s%N)
for i in $(seq 1 400); do
  code=$(curl -s -o /tmp/firstcurl-out -w '%{http_code}' -X POST http://127.0.0.1:8080/command -H "Content-Type: application/json" -d '{"type": "SET", "key": "test", "value": "hello"}')
  [ "$code" = 200 ] && break
  sleep 0.005
done
t1=$(date +%s%N)
echo "first curl: HTTP $code $(( (t1 - t0) / 1000000 )) ms after the server printed that it listens; $(cat /tmp/firstcurl-out)"
ls -d "$1"/data "$1"/src/RaftKv.Server/data 2>&1 | sed 's/^/data: /'
kill $pid; wait $pid 2>/dev/null
