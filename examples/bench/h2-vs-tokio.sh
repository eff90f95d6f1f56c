#!/usr/bin/env bash
# The figures issue 17's closing note asks for, in one run:
#   1. h2load (h2c) against http-proxy and against http-proxy-tokio (the same request
#      handling on tokio): proxy CPU per request, alternating rounds;
#   2. http-proxy's RSS before and after CLOSE_CONNS close-per-request connections;
#   3. a TLS round trip through http-proxy (HTTP/1.1 and h2 by ALPN);
#   4. a tcp-proxy restart (--handoff) under load, with its lost-connection count.
#
# Each proxy runs one worker pinned to PROXY_CPU; the load tools and nginx run on
# LOAD_CPU. CPU time is the proxy's utime+stime from /proc/PID/stat (its io-wq
# threads included), read just before and after the load.
#
# Needs: nginx wrk h2load (nghttp2-client) openssl curl python3, and a quiet machine: figures
# from a shared, busy one are noise.
#
#   examples/bench/h2-vs-tokio.sh            # the full run (a few minutes)
#   examples/bench/h2-vs-tokio.sh --tiny     # tiny counts: checks the script works
set -euo pipefail

ROUNDS=${ROUNDS:-3}                  # alternating rounds per proxy
REQUESTS=${REQUESTS:-100000}         # h2load requests per round
CLIENTS=${CLIENTS:-16}               # h2load connections
STREAMS=${STREAMS:-10}               # h2load concurrent streams per connection
CLOSE_CONNS=${CLOSE_CONNS:-100000}   # close-per-request connections for the RSS figure
RESTART_SECS=${RESTART_SECS:-6}      # wrk run across the restart
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
if [[ ${1:-} == --tiny ]]; then
    ROUNDS=1 REQUESTS=2000 CLOSE_CONNS=2000 RESTART_SECS=2
fi

for tool in nginx wrk h2load openssl curl python3 taskset; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/uringo-bench.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    nginx -c "$WORK/nginx.conf" -s stop 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT

cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p uringo-examples \
    --bin http-proxy --bin http-proxy-tokio --bin tcp-proxy
BIN="$ROOT/target/release"
TCK=$(getconf CLK_TCK)

cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
    access_log off;
    server {
        listen 127.0.0.1:18080 reuseport backlog=4096;
        location / { return 200 "hello from nginx\n"; }
    }
}
CONF
taskset -c "$LOAD_CPU" nginx -c "$WORK/nginx.conf"
UPSTREAM=127.0.0.1:18080

# Starts a program pinned to PROXY_CPU, logging to $WORK/NAME.log; sets $PID.
start() {
    local name=$1; shift
    taskset -c "$PROXY_CPU" "$@" 2>"$WORK/$name.log" &
    PID=$!
    PIDS+=("$PID")
    for _ in $(seq 100); do
        grep -q "listening on" "$WORK/$name.log" && return 0
        sleep 0.05
    done
    echo "$name did not start:" >&2; cat "$WORK/$name.log" >&2; exit 1
}
stop() { kill -TERM "$1"; wait "$1" 2>/dev/null || true; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

echo "## 1. h2load (h2c, -n $REQUESTS -c $CLIENTS -m $STREAMS) → proxy (1 worker, CPU $PROXY_CPU) → nginx"
echo
echo "| round | proxy | requests ok | req/s | proxy CPU µs/request |"
echo "|---|---|---:|---:|---:|"
for round in $(seq "$ROUNDS"); do
    for proxy in http-proxy http-proxy-tokio; do
        start "$proxy" "$BIN/$proxy" --listen 127.0.0.1:18001 --upstream "$UPSTREAM" --workers 1
        # Warm-up: pool filled, pages touched.
        taskset -c "$LOAD_CPU" h2load -n 1000 -c "$CLIENTS" -m "$STREAMS" http://127.0.0.1:18001/ >/dev/null
        before=$(cpu_ticks "$PID")
        out=$(taskset -c "$LOAD_CPU" h2load -n "$REQUESTS" -c "$CLIENTS" -m "$STREAMS" http://127.0.0.1:18001/)
        after=$(cpu_ticks "$PID")
        ok=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
        rate=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
        awk -v r="$round" -v p="$proxy" -v ok="$ok" -v rate="$rate" -v t=$((after - before)) -v hz="$TCK" \
            'BEGIN { printf "| %d | %s | %d | %.0f | %.2f |\n", r, p, ok, rate, ok ? t / hz * 1e6 / ok : 0 }'
        stop "$PID"
    done
done

echo
echo "## 2. http-proxy RSS across $CLOSE_CONNS close-per-request connections"
# A client loop: wrk cannot stop after a number of requests, h2load does not reconnect.
cat > "$WORK/close_per_request.py" <<'PY'
import socket, sys, threading
total, port, threads = int(sys.argv[1]), int(sys.argv[2]), 4
failed = []
def client(n):
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            s.close()
            if not data.startswith(b"HTTP/1.1 200"):
                failed.append(data[:40])
        except OSError as err:
            failed.append(err)
workers = [threading.Thread(target=client, args=(total // threads,)) for _ in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
print(f"connections: {total // threads * threads}; failed: {len(failed)}")
PY
start http-proxy-rss "$BIN/http-proxy" --listen 127.0.0.1:18001 --upstream "$UPSTREAM" --workers 1
taskset -c "$LOAD_CPU" python3 "$WORK/close_per_request.py" 1000 18001 >/dev/null
rss_before=$(rss_kib "$PID")
echo
taskset -c "$LOAD_CPU" python3 "$WORK/close_per_request.py" "$CLOSE_CONNS" 18001
sleep 1
rss_after=$(rss_kib "$PID")
echo "RSS after 1000 warm-up connections: $rss_before KiB; after $CLOSE_CONNS more: $rss_after KiB; difference: $((rss_after - rss_before)) KiB"
stop "$PID"

echo
echo "## 3. TLS round trip through http-proxy (self-signed certificate)"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
start http-proxy-tls "$BIN/http-proxy" --listen 127.0.0.1:18443 --upstream "$UPSTREAM" --workers 1 \
    --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"
echo
for version in --http1.1 --http2; do
    printf '%s: ' "$version"
    curl -sS --cacert "$WORK/cert.pem" "$version" -o /dev/null \
        -w '%{http_version} %{http_code}\n' https://localhost:18443/
done
out=$(taskset -c "$LOAD_CPU" h2load -n 1000 -c 4 -m 10 https://127.0.0.1:18443/)
grep -E "^requests:|Application protocol" <<<"$out"
stop "$PID"

echo
echo "## 4. tcp-proxy restart under load (wrk, Connection: close, ${RESTART_SECS}s)"
rm -f "$WORK/handoff.sock"
start tcp-proxy-old "$BIN/tcp-proxy" --listen 127.0.0.1:18000 --upstream "$UPSTREAM" --workers 1 \
    --handoff "$WORK/handoff.sock"
old=$PID
taskset -c "$LOAD_CPU" wrk -t1 -c16 -d"${RESTART_SECS}s" -H "Connection: close" \
    http://127.0.0.1:18000/ >"$WORK/wrk-restart.txt" &
wrk_pid=$!
sleep "$(awk -v s="$RESTART_SECS" 'BEGIN { print s / 3 }')"
start tcp-proxy-new "$BIN/tcp-proxy" --listen 127.0.0.1:18000 --upstream "$UPSTREAM" --workers 1 \
    --handoff "$WORK/handoff.sock"
new=$PID
wait "$old" && echo "old process exited 0" || echo "old process exited with $?"
wait "$wrk_pid"
grep -E "requests in|Socket errors|Non-2xx" "$WORK/wrk-restart.txt"
lost=$(sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1+\2+\3+\4/p' \
    "$WORK/wrk-restart.txt")
echo "lost connections: $(( ${lost:-0} ))"
stop "$new"
