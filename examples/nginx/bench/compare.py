#!/usr/bin/env python3
"""Requests per second through a real nginx: ngx_http_upstream_vibra_module
against nginx's own `hash $request_uri consistent` and `least_conn`, as
paired medians over many interleaved rounds (issue 11 item 3).

One front nginx (one worker process) proxies to four back ends that answer
from memory (a second nginx, one worker, `return 200`). It listens on three
ports, one per balancer over the same four back ends:

    vibra:       vibra_hash $request_uri replication=2 hash=fast;
    consistent:  hash $request_uri consistent;
    least_conn:  least_conn;

Each round runs wrk once against each port (the order rotates every round),
with a Lua script that requests the real World Cup URLs in turn; the result
is the median requests per second of each balancer and the median, over the
rounds, of the per-round ratios vibra / consistent and vibra / least_conn, so
a load change during the run affects both sides of each ratio alike. The load
average before and after is printed with the results.

    cargo run -q -p wc98 --bin wc98-urls > urls.txt   # needs VIBRA_DATA_DIR
    python3 examples/nginx/bench/compare.py --module <dir>/ngx_http_upstream_vibra_module.so \
        --urls urls.txt [--rounds 31] [--seconds 2] [--connections 16]

Needs nginx (the one the module was built for) and wrk. Standard library only.
URLs with bytes an HTTP request line cannot carry (controls, space, DEL) are
skipped, and so are those nginx itself refuses (a back end is asked for each
once first: bad percent-escapes, dot-segments above the root); both counts are
printed.
"""

import argparse
import http.client
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SERVERS = 4
BALANCERS = [
    ("vibra", "vibra_hash $request_uri replication=2 hash=fast;"),
    ("consistent", "hash $request_uri consistent;"),
    ("least_conn", "least_conn;"),
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def wait_answering(port, limit=30):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(16).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def answered(port, urls):
    """The URLs that nginx at `port` answers with 200 (one keep-alive connection), and the
    count of the others."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    kept = []
    for u in urls:
        conn.putrequest("GET", u.decode("ascii"), skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", "localhost")
        conn.endheaders()
        response = conn.getresponse()
        response.read()
        if response.status == 200:
            kept.append(u)
        if response.will_close:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.close()
    return kept, len(urls) - len(kept)


def nginx_conf(d, body, module=None):
    return (
        (f"load_module {module};\n" if module else "")
        + "daemon off;\nworker_processes 1;\n"
        + f"pid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n"
        + "events { worker_connections 4096; }\n"
        + "http {\n    access_log off;\n"
        + f"    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n"
        + f"    fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n"
        + f"    scgi_temp_path {d}/scgi;\n"
        + body + "}\n")


def start_nginx(nginx, d, conf):
    os.makedirs(d, exist_ok=True)
    if os.geteuid() == 0:
        os.chmod(d, 0o755)  # the worker runs as "nobody"
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    test = subprocess.run([nginx, "-t", "-p", d, "-c", path], capture_output=True, text=True)
    if test.returncode != 0:
        raise RuntimeError(f"nginx -t rejected {path}:\n{test.stderr}")
    return subprocess.Popen([nginx, "-p", d, "-c", path])


def wrk_rps(wrk, port, script, seconds, connections):
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", script,
         f"http://127.0.0.1:{port}"],
        capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if rps is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed responses on port {port}:\n{out}")
    return float(rps.group(1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--module", required=True)
    p.add_argument("--urls", required=True, help="one URL per line (wc98-urls)")
    p.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    p.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    p.add_argument("--rounds", type=int, default=31)
    p.add_argument("--seconds", type=int, default=2)
    p.add_argument("--connections", type=int, default=16)
    args = p.parse_args()
    if args.rounds < 21:
        p.error("--rounds: at least 21 paired rounds")

    with open(args.urls, "rb") as f:
        lines = f.read().split(b"\n")
    urls = [u for u in lines if u and all(0x20 < b < 0x7f for b in u)]
    skipped = sum(1 for u in lines if u) - len(urls)

    work = tempfile.mkdtemp(prefix="vibra-compare-")
    procs = []
    try:
        # back ends: one nginx, four ports, answers from memory
        ports = [free_port() for _ in range(SERVERS)]
        body = "".join(
            f"    server {{ listen 127.0.0.1:{port}; "
            f"location / {{ return 200 \"backend {k}\\n\"; }} }}\n"
            for k, port in enumerate(ports))
        procs.append(start_nginx(args.nginx, f"{work}/backends",
                                 nginx_conf(f"{work}/backends", body)))
        for port in ports:
            wait_answering(port)
        # nginx refuses some targets (bad percent-escapes, dot-segments above the root): keep
        # the URLs a back end answers with 200, so every balancer serves the same valid list
        urls, refused = answered(ports[0], urls)

        # front: one worker, one port per balancer
        members = "".join(f"        server 127.0.0.1:{port};\n" for port in ports)
        listen = {name: free_port() for name, _ in BALANCERS}
        body = "".join(
            f"    upstream {name} {{\n        zone {name} 64k;\n        {directive}\n"
            f"{members}    }}\n"
            f"    server {{ listen 127.0.0.1:{listen[name]}; "
            f"location / {{ proxy_pass http://{name}; }} }}\n"
            for name, directive in BALANCERS)
        procs.append(start_nginx(args.nginx, f"{work}/front",
                                 nginx_conf(f"{work}/front", body,
                                            os.path.abspath(args.module))))
        for port in listen.values():
            wait_answering(port)

        script = os.path.join(work, "urls.lua")
        with open(script, "w") as f:
            f.write("local urls = {\n")
            for u in urls:
                f.write("  %s,\n" % ("[==[" + u.decode("ascii") + "]==]"))
            f.write("}\nlocal i = 0\nrequest = function()\n"
                    "  i = i % #urls + 1\n  return wrk.format(nil, urls[i])\nend\n")

        before = loadavg()
        rps = {name: [] for name, _ in BALANCERS}
        names = [name for name, _ in BALANCERS]
        for r in range(args.rounds):
            for k in range(len(names)):
                name = names[(k + r) % len(names)]
                rps[name].append(wrk_rps(args.wrk, listen[name], script, args.seconds,
                                         args.connections))
        after = loadavg()
    except RuntimeError:
        for log in (f"{work}/front/error.log", f"{work}/backends/error.log"):
            if os.path.exists(log):
                with open(log) as f:
                    sys.stderr.write(f"--- {log} (last lines)\n" + "".join(f.readlines()[-5:]))
        raise
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)

    print(f"{len(urls)} URLs ({skipped} not sendable, {refused} refused by nginx), {args.rounds} interleaved rounds of "
          f"{args.seconds} s, wrk -t1 -c{args.connections}, one nginx worker, "
          f"{SERVERS} back ends; load average {before} before, {after} after")
    print("| balancer | requests/s (median) | vibra / it (median of per-round ratios, min-max) |")
    print("| --- | --- | --- |")
    for name in names:
        ratios = [v / o for v, o in zip(rps["vibra"], rps[name])]
        print(f"| {name} | {statistics.median(rps[name]):.0f} | "
              f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) |")


if __name__ == "__main__":
    sys.exit(main())
