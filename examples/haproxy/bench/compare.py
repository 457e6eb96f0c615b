#!/usr/bin/env python3
"""Vibra in HAProxy against HAProxy's own URL hashing, on the same back ends (issue 17 item 3).

    python3 examples/haproxy/bench/compare.py --wc98-urls FILE [--urls 2000] [--rounds 5] \\
        [--seconds 3]

Back ends: four nginx instances on loopback, each answering every request with its own name
(`return 200`), so the back ends cost the same under every configuration. Configurations, all
from the one `serve.sh --print-config` (same threads, checks, timeouts), differing only in the
backend's routing lines:

    vibra-r1     lua.vibra(1,fast)            (the Lua module, R = 1; serve.sh's state line)
    vibra-r2     lua.vibra(2,fast)            (R = 2)
    uri          balance uri                  (hash-type map-based, HAProxy's default)
    uri-chash    balance uri + hash-type consistent
    uri-chash-bf balance uri + hash-type consistent + hash-balance-factor 125

1. Locality loss after one failure (SPEC 3, measured): each URL is requested once with every
   back end up, back end 2 is killed, and once HAProxy's check marks it DOWN each URL is requested
   again. A URL whose back end changed lost its locality; the loss is the fraction of URLs that
   moved, and the optimum is the fraction that were on the killed back end (only those must
   move). Requests are sequential and the next waits until HAProxy counts no session, so the
   loads are equal and each URL is served by the first member of its subset.
2. Requests per second: `wrk` (one thread, 16 connections, keep-alive) cycles through the URL
   list for --seconds against each configuration; the configurations run at the same time on
   their own ports and are measured one after another in each round, in an order rotated every
   round (paired, interleaved rounds). Prints each configuration's mean, standard deviation,
   minimum, maximum and median, and its ratio to `uri` (median, mean and range of the per-round
   ratios: on a loaded machine a single round can be off by a factor of several, and the
   median of the paired ratios is the figure that such a round moves least).

Prints the machine's load average before and after: on a shared machine the figures move with
the other processes. Needs nginx and wrk besides haproxy; standard-library Python.

With --callgrind REQUESTS it measures instead, one haproxy at a time under valgrind's callgrind,
the instructions haproxy executes per request (user space) over REQUESTS sequential keep-alive
requests: deterministic where requests per second on a shared machine are not.
"""

import argparse
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "test"))
import test_haproxy as t  # noqa: E402  (the test's client, stats and URL helpers)

SERVERS = 4
KILLED = 2
# name: (the replication serve.sh writes the base configuration for, the routing lines)
CONFIGS = {
    "vibra-r1": (1, "{state}    http-request set-var(txn.vibra) "
                    "\"url,concat(' ',txn.vibra_state),lua.vibra(1,fast)\"\n{use}"),
    "vibra-r2": (2, "{state}    http-request set-var(txn.vibra) "
                    "\"url,concat(' ',txn.vibra_state),lua.vibra(2,fast)\"\n{use}"),
    "uri": (1, "    balance uri\n"),
    "uri-chash": (1, "    balance uri\n    hash-type consistent\n"),
    "uri-chash-bf": (1, "    balance uri\n    hash-type consistent\n    hash-balance-factor 125\n"),
}
WRK_SCRIPT = """
local paths = {}
for line in io.lines(os.getenv("VIBRA_BENCH_URLS")) do paths[#paths + 1] = line end
local i = 0
request = function()
    i = i % #paths + 1
    return wrk.format("GET", paths[i])
end
"""


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Nginx:
    """One nginx back end answering every request with its name."""

    def __init__(self, root, k, port):
        self.dir = os.path.join(root, f"nginx{k}")
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(f"daemon off;\nworker_processes 1;\npid {self.dir}/nginx.pid;\n"
                    f"error_log {self.dir}/error.log;\nevents {{ worker_connections 1024; }}\n"
                    "http {\n    access_log off;\n"
                    f"    client_body_temp_path {self.dir}/body;\n"
                    f"    proxy_temp_path {self.dir}/proxy;\n"
                    f"    fastcgi_temp_path {self.dir}/fastcgi;\n"
                    f"    uwsgi_temp_path {self.dir}/uwsgi;\n"
                    f"    scgi_temp_path {self.dir}/scgi;\n"
                    f"    server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"backend{k}\\n\"; }} }}\n"
                    "}\n")
        self.port = port
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(["nginx", "-p", self.dir, "-c", self.conf],
                                     stderr=subprocess.DEVNULL)
        t.wait_for(f"nginx on {self.port}", lambda: self.answers())

    def answers(self):
        return answers(self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nginx: fast shutdown
            self.proc.wait(timeout=t.WAIT_LIMIT_S)


def answers(port):
    try:
        return t.get(port, "/")[0] == 200
    except OSError:
        return False


def make_config(base, name, body):
    """serve.sh's configuration with the backend's routing lines replaced by `body`."""
    lines = base.splitlines(keepends=True)
    use = "".join(line for line in lines if line.lstrip().startswith("use-server "))
    state_lines = ("acl vibra_", "http-request set-var-fmt(txn.vibra_state)",
                   "http-request set-var(txn.vibra_state)")
    state = "".join(line for line in lines if line.lstrip().startswith(state_lines))
    fallback = "".join(line for line in lines if line.lstrip().startswith("balance "))
    routing = ("balance ", "http-request set-var(txn.vibra)", "use-server ") + state_lines
    out, inserted = [], False
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith("# HAProxy's own balancing"):
            continue
        if stripped.startswith(routing):
            if not inserted:
                out.append(body.format(use=use, state=state))
                if not body.startswith("    balance"):
                    out.append(fallback)  # serve.sh's, for requests the module names no server
                inserted = True
            continue
        out.append(line)
    return "".join(out)


def serve_base(rundir, port, backends, replication):
    os.makedirs(rundir, exist_ok=True)
    return subprocess.run(
        [t.SERVE_SH, "--print-config", "--listen", f"127.0.0.1:{port}",
         "--replication", str(replication),
         "--hash", "fast", "--runtime-dir", rundir] + backends,
        capture_output=True, text=True, check=True).stdout


def served(port, sock, urls):
    """The back end that serves each URL, requests one at a time with equal loads."""
    out = []
    for url in urls:
        status, number, _ = t.get(port, url)
        if status != 200:
            raise RuntimeError(f"{url} -> {status}")
        out.append(number)
        t.wait_for("no session", lambda: t.no_sessions(sock))
    return out


def wrk(port, seconds, urls_file, script):
    env = dict(os.environ, VIBRA_BENCH_URLS=urls_file)
    out = subprocess.run(["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", script,
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True,
                         env=env, check=True).stdout
    rps = requests = None
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if " requests in " in line:
            requests = int(line.split()[0])
        if "Non-2xx" in line or "Socket errors" in line:
            raise RuntimeError(f"wrk reported errors: {line.strip()}")
    if rps is None or not requests:
        raise RuntimeError(f"no Requests/sec or request count in wrk's output:\n{out}")
    return rps, requests


def cpu_seconds(pid):
    """User plus system CPU time of a process (all its threads) so far, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def callgrind(name, config_path, port, urls, requests, outdir):
    """Instructions haproxy executes per request (user space), counted by callgrind over
    `requests` sequential keep-alive requests after 200 unmeasured ones: deterministic, unlike
    requests per second on a shared machine."""
    out = os.path.join(outdir, f"callgrind.{name}")
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                             f"--callgrind-out-file={out}", "haproxy", "-db", "-f", config_path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t.wait_for(f"{name} under callgrind to answer", lambda: answers(port))
        conn = http.client.HTTPConnection("127.0.0.1", port)

        def send(count):
            for i in range(count):
                conn.request("GET", urls[i % len(urls)])
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"{name}: {urls[i % len(urls)]} -> {response.status}")

        send(200)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True,
                       capture_output=True)
        send(requests)
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True,
                       capture_output=True)
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    with open(out) as f:
        total = next(int(line.split()[1]) for line in f if line.startswith("totals:"))
    return total / requests


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wc98-urls", required=True, metavar="FILE")
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--callgrind", type=int, metavar="REQUESTS",
                        help="instead: instructions per request of each haproxy under callgrind "
                        "(valgrind), over REQUESTS sequential requests")
    args = parser.parse_args()

    real = t.read_wc98_urls(args.wc98_urls)
    sample, _ = t.wc98_sample(real, args.urls * 2)
    # paths only (wrk sends every request to one Host), and none with a '/.' or '//' segment,
    # which the nginx back ends normalise or refuse
    urls = [u for u in sample
            if u.startswith("/") and "/." not in u and "//" not in u][:args.urls]
    root = tempfile.mkdtemp(prefix="vibra-haproxy-bench-")
    print(f"load average before: {load_average()}  ({os.cpu_count()} CPUs)", flush=True)
    print(f"{len(urls)} World Cup URLs, {SERVERS} nginx back ends, back end {KILLED} killed",
          flush=True)
    backends = [Nginx(root, k, t.free_port()) for k in range(SERVERS)]
    procs = []
    try:
        for b in backends:
            b.start()
        addresses = [f"127.0.0.1:{b.port}" for b in backends]
        ports, socks = {}, {}
        if args.callgrind:
            print(f"\ninstructions haproxy executes per request (callgrind, {args.callgrind} "
                  "sequential keep-alive requests)\n| configuration | instructions |\n| --- | --- |")
        for name, (replication, body) in CONFIGS.items():
            port = t.free_port()
            rundir = os.path.join(root, name)
            config = make_config(serve_base(rundir, port, addresses, replication), name, body)
            path = os.path.join(rundir, "haproxy.cfg")
            if args.callgrind:
                # checks every 100 s, not 500 ms: their work is not a request's
                config = config.replace("inter 500ms fastinter 500ms downinter 500ms",
                                        "inter 100s fastinter 100s downinter 100s")
            with open(path, "w") as f:
                f.write(config)
            if args.callgrind:
                per = callgrind(name, path, port, urls, args.callgrind, rundir)
                print(f"| {name} | {per:.0f} |", flush=True)
                continue
            log = open(os.path.join(rundir, "log"), "w")
            procs.append(subprocess.Popen(["haproxy", "-db", "-f", path], stdout=log,
                                          stderr=subprocess.STDOUT))
            ports[name], socks[name] = port, os.path.join(rundir, "haproxy.sock")
            t.wait_for(f"{name} to answer", lambda: answers(port))

        if args.callgrind:
            return

        # 1. locality loss after one failure
        before = {n: served(ports[n], socks[n], urls) for n in CONFIGS}
        backends[KILLED].stop()
        for n in CONFIGS:
            t.wait_for(f"{n}: s{KILLED} DOWN",
                       lambda: t.server_status(socks[n], f"s{KILLED}").startswith("DOWN"))
        after = {n: served(ports[n], socks[n], urls) for n in CONFIGS}
        backends[KILLED].start()
        for n in CONFIGS:
            t.wait_for(f"{n}: s{KILLED} UP",
                       lambda: t.server_status(socks[n], f"s{KILLED}").startswith("UP"))
        print("\nlocality loss after back end 2 fails (fraction of URLs whose back end changed)")
        print("| configuration | URLs on back end 2 before (optimum) | loss | loss / optimum |")
        print("| --- | --- | --- | --- |")
        for n in CONFIGS:
            on_killed = sum(1 for s in before[n] if s == KILLED) / len(urls)
            moved = sum(1 for a, b in zip(before[n], after[n]) if a != b) / len(urls)
            spread = [before[n].count(k) for k in range(SERVERS)]
            print(f"| {n} | {on_killed:.3f} (URLs per back end {spread}) | {moved:.3f} | "
                  f"{moved / on_killed:.2f} |", flush=True)

        # 2. requests per second, paired interleaved rounds
        urls_file = os.path.join(root, "urls.txt")
        with open(urls_file, "w") as f:
            f.write("".join(u + "\n" for u in urls))
        script = os.path.join(root, "urls.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT)
        names = list(CONFIGS)
        pids = dict(zip(names, (p.pid for p in procs)))
        rps = {n: [] for n in names}
        cpu = {n: [] for n in names}  # haproxy's CPU time per request, microseconds
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                before = cpu_seconds(pids[n])
                rate, requests = wrk(ports[n], args.seconds, urls_file, script)
                rps[n].append(rate)
                cpu[n].append((cpu_seconds(pids[n]) - before) * 1e6 / requests)
            print(f"round {r + 1}: " + ", ".join(f"{n} {rps[n][-1]:.0f}" for n in names),
                  flush=True)
        print(f"\nrequests per second, {args.rounds} paired rounds of {args.seconds} s "
              "(wrk -t1 -c16, keep-alive)")
        print("| configuration | mean | stdev | min | max | median | ratio to uri: median, "
              "mean (min-max) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for n in names:
            ratios = [a / b for a, b in zip(rps[n], rps["uri"])]
            print(f"| {n} | {statistics.mean(rps[n]):.0f} | {statistics.pstdev(rps[n]):.0f} | "
                  f"{min(rps[n]):.0f} | {max(rps[n]):.0f} | {statistics.median(rps[n]):.0f} | "
                  f"{statistics.median(ratios):.3f}, {statistics.mean(ratios):.3f} "
                  f"({min(ratios):.3f}-{max(ratios):.3f}) |")
        print("\nhaproxy's CPU time (user + system, all threads, from /proc) per request, "
              "microseconds: what the Lua route adds per request, less moved by the other "
              "processes than requests per second")
        print("| configuration | mean | stdev | median | ratio to uri: median of paired ratios |")
        print("| --- | --- | --- | --- | --- |")
        for n in names:
            ratios = [a / b for a, b in zip(cpu[n], cpu["uri"])]
            print(f"| {n} | {statistics.mean(cpu[n]):.1f} | {statistics.pstdev(cpu[n]):.1f} | "
                  f"{statistics.median(cpu[n]):.1f} | {statistics.median(ratios):.3f} |")
        print(f"\nload average after: {load_average()}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait()
        for b in backends:
            b.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
