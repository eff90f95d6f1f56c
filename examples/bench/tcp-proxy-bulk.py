#!/usr/bin/env python3
"""Bulk transfers through TCP proxies, and downloads whose clients stop reading.

1. wrk (-t1 -c16) fetches a 1 MiB file from nginx through each proxy in turn, in
   alternating rounds: tcp-proxy (uringo::io::copy_bidirectional), the 20-line uringo
   and tokio proxies of the `versus` bench (`--serve proxy-uringo|proxy-tokio`, one
   worker each), a second tokio proxy (the A/A check: its ratio to the first is the
   run's noise) and haproxy (mode tcp, one thread). Each proxy is pinned to PROXY_CPU;
   wrk and nginx run on LOAD_CPU. The figure is the proxy's CPU (utime+stime from
   /proc/PID/stat, io-wq threads included) per MiB delivered, and its ratio to tokio.
2. 100 clients download a 256 MiB file through tcp-proxy, read its first 256 KiB and
   stop reading: once nothing moves, the proxy's io-wq threads (`iou-wrk*`), its CPU
   per second over 10 s and its RSS.

Needs nginx, wrk and haproxy (Debian packages), and a quiet machine.

    examples/bench/tcp-proxy-bulk.py            # 5 rounds of 5 s
    ROUNDS=1 SECS=1 examples/bench/tcp-proxy-bulk.py   # checks the script works
"""

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROUNDS = int(os.environ.get("ROUNDS", 5))
SECS = int(os.environ.get("SECS", 5))
PROXY_CPU = os.environ.get("PROXY_CPU", "0")
LOAD_CPU = os.environ.get("LOAD_CPU", "1")
STALLED = 100
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TCK = os.sysconf("SC_CLK_TCK")
NGINX = 18080


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TCK


def io_wq_threads(pid):
    count = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            if open(f"/proc/{pid}/task/{task}/comm").read().startswith("iou-wrk"):
                count += 1
        except OSError:
            pass
    return count


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_listening(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


def main():
    for tool in ("nginx", "wrk", "haproxy", "taskset"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            sys.exit(f"missing: {tool}")
    subprocess.run(
        ["cargo", "build", "--release", "-q", "--manifest-path", f"{ROOT}/Cargo.toml",
         "-p", "uringo-examples", "--bin", "tcp-proxy", "-p", "uringo-benches", "--bin", "versus"],
        check=True,
    )
    binaries = f"{ROOT}/target/release"
    work = tempfile.mkdtemp(prefix="uringo-bulk.")
    os.chmod(work, 0o755)  # nginx's worker reads the files as another user
    os.makedirs(f"{work}/www")
    with open(f"{work}/www/1m", "wb") as f:
        f.write(os.urandom(1 << 20))
    with open(f"{work}/www/256m", "wb") as f:
        f.truncate(256 << 20)
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/nginx.err;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  sendfile on;
  server {{ listen 127.0.0.1:{NGINX} backlog=4096; root {work}/www; }}
}}
""")
    with open(f"{work}/haproxy.cfg", "w") as f:
        f.write(f"""global
  nbthread 1
  maxconn 4000
defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
listen p
  bind 127.0.0.1:18005
  server s1 127.0.0.1:{NGINX}
""")
    procs = []
    try:
        procs.append(subprocess.Popen(["taskset", "-c", LOAD_CPU, "nginx", "-c", f"{work}/nginx.conf"]))
        wait_listening(NGINX)
        proxies = {}
        tcp_proxy = subprocess.Popen(
            ["taskset", "-c", PROXY_CPU, f"{binaries}/tcp-proxy", "--listen", "127.0.0.1:18002",
             "--upstream", f"127.0.0.1:{NGINX}", "--workers", "1"],
            stderr=subprocess.DEVNULL)
        procs.append(tcp_proxy)
        proxies["tcp-proxy"] = (tcp_proxy, 18002)
        for name, kind in (("uringo", "proxy-uringo"), ("tokio", "proxy-tokio"), ("tokio (A/A)", "proxy-tokio")):
            child = subprocess.Popen(
                [f"{binaries}/versus", "--serve", kind, "--cpu", PROXY_CPU, "--upstream", f"127.0.0.1:{NGINX}"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            procs.append(child)
            port = int(child.stdout.readline().strip().rsplit(":", 1)[1])
            proxies[name] = (child, port)
        haproxy = subprocess.Popen(["taskset", "-c", PROXY_CPU, "haproxy", "-f", f"{work}/haproxy.cfg"],
                                   stderr=subprocess.DEVNULL)
        procs.append(haproxy)
        proxies["haproxy"] = (haproxy, 18005)
        for _, port in proxies.values():
            wait_listening(port)

        per_mib = {name: [] for name in proxies}
        for round_ in range(ROUNDS):
            for name, (proc, port) in proxies.items():
                before = cpu_seconds(proc.pid)
                out = subprocess.run(
                    ["taskset", "-c", LOAD_CPU, "wrk", "-t1", "-c16", f"-d{SECS}s", f"http://127.0.0.1:{port}/1m"],
                    capture_output=True, text=True).stdout
                spent = cpu_seconds(proc.pid) - before
                if "Non-2xx" in out or "Socket errors" in out:
                    sys.exit(f"{name}: failed requests:\n{out}")
                requests = int(re.search(r"(\d+) requests in", out).group(1))
                per_mib[name].append(spent * 1e3 / max(requests, 1))
                print(f"round {round_} {name:12s} {requests / SECS:7.0f} MiB/s  {per_mib[name][-1]:.3f} ms CPU/MiB", flush=True)
        tokio = statistics.median(per_mib["tokio"])
        print(f"\n1 MiB responses, wrk -t1 -c16, {ROUNDS} rounds of {SECS} s (median):\n")
        print("| proxy | CPU ms per MiB | × tokio | spread × tokio |")
        print("|---|---:|---:|---|")
        for name, values in per_mib.items():
            med = statistics.median(values)
            print(f"| {name} | {med:.3f} | {med / tokio:.2f} | {min(values) / tokio:.2f}..{max(values) / tokio:.2f} |")

        stalled(tcp_proxy.pid)
    finally:
        # SIGTERM, not SIGKILL: nginx's master then stops its worker too.
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def stalled(pid):
    """STALLED downloads through tcp-proxy whose clients stop reading."""
    threads_before = io_wq_threads(pid)
    clients = []
    for _ in range(STALLED):
        s = socket.create_connection(("127.0.0.1", 18002))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(b"GET /256m HTTP/1.1\r\nHost: x\r\n\r\n")
        got = 0
        while got < 256 * 1024:
            got += len(s.recv(65536))
        clients.append(s)
    # Nothing moves once every path from nginx to its client is full.
    last, still = -1.0, 0
    while still < 5:
        time.sleep(0.2)
        now = cpu_seconds(pid)
        still = still + 1 if now - last < 0.002 else 0
        last = now
    # CPU time moves in clock ticks (10 ms): a long window, or one tick reads as
    # several ms/s.
    window = 10
    before = cpu_seconds(pid)
    time.sleep(window)
    per_second = (cpu_seconds(pid) - before) / window * 1e3
    print(f"\n{STALLED} stalled downloads through tcp-proxy: io-wq threads {threads_before} -> "
          f"{io_wq_threads(pid)}, proxy CPU {per_second:.2f} ms/s while stalled, RSS {rss_kib(pid)} KiB")
    for s in clients:
        s.close()


if __name__ == "__main__":
    main()
