#!/usr/bin/env python3
"""End-to-end test of ngx_http_upstream_vibra_module with a real nginx.

Starts four real back ends (backend.py, each on a kernel-chosen loopback port)
and a real nginx (two worker processes, `reuseport`, so requests land on both
workers) with the module loaded and upstreams over the same four back ends:

    charsum:  vibra_hash $request_uri replication=2 hash=charsum;
    md5:      vibra_hash $request_uri replication=3 hash=md5;
    sha1:     vibra_hash $request_uri replication=1 hash=sha1;
    fast:     vibra_hash $request_uri replication=4 hash=fast;

and checks, for every URL of the list:

1. the same URL lands on the same back end on every request (whichever worker
   serves it);
2. it lands on the first server of the subset `vibra-lab map` prints (all
   loads are equal between requests), also after a configuration reload;
3. while one request is held open on server s, the URLs whose subset starts
   with s go to the next member (the least-loaded one), the others stay, and
   this is seen by the worker that does not hold the request: the
   active-connection counts live in shared memory;
4. with one back end stopped, only the URLs that were on it move, each to where
   `vibra-lab map --down k` says, and the stopped back end is tried once in all
   (max_fails=1: the failure marks it down for every worker);
5. restarted, it is probed once fail_timeout has passed and gets its URLs back.

Prints `ok`/`FAIL` per check and a closing `N passed, M failed` line; exits 1
on any failure. It also checks that `nginx -t` refuses configurations the
module cannot honour. Standard library only.
"""

import argparse
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

# What every front-end test shares lives in examples/common (one copy, not one per test).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "common"))
import frontend_check  # noqa: E402
from frontend_check import Checks, free_port, read_wc98_urls  # noqa: E402,F401

HERE = os.path.dirname(os.path.abspath(__file__))
SERVERS = 4
# name, replication, hash of each upstream the test configures
UPSTREAMS = [("charsum", 2, "charsum"), ("md5", 3, "md5"), ("sha1", 1, "sha1"), ("fast", 4, "fast")]
# One more upstream over the same back ends whose failed peers are probed again
# after RECOVER_TIMEOUT_S: it shows a restarted back end getting its URLs back.
RECOVER = ("recover", 2, "charsum")
RECOVER_TIMEOUT_S = 1
# A bound on every wait for a condition (never a timing assertion).
WAIT_LIMIT_S = 60
# Long enough that a failed peer stays down for the rest of the test.
FAIL_TIMEOUT_S = 600
# The back end stopped in check 4.
STOPPED = 2


def synthetic_urls():
    """Request-targets covering the key rules: queries, encodings, case, the root."""
    urls = ["/", "/index.html", "/?lang=en", "/a", "/A", "/a%20b", "/%7Euser/"]
    for i in range(60):
        urls.append(f"/english/images/team_{i}.gif")
        if i % 3 == 0:
            urls.append(f"/french/news/{i}.html?from={i}&lang=fr")
    return urls


# The characters a request-target may hold and nginx passes to the upstream (and to
# $request_uri) unchanged: RFC 3986's unreserved and sub-delims, ':', '@', '/' and '?'.
SAFE_URL = re.compile(r"^/[A-Za-z0-9/._~!$&'()*+,;=:@?-]*$")

# Why a World Cup URL is left out of the sample (it is never altered to make it fit).
SKIP_REASONS = {
    "bytes": "a blank, control (CR, tab) or non-ASCII byte: an HTTP/1.1 request line "
             "cannot carry it as it is",
    "chars": "a character outside the set nginx passes on unchanged ('%', '\"', '<', ...) "
             "or no leading '/'",
    "segments": "a '/.' or '//' segment, which nginx normalises or refuses",
}


def skip_reason(url):
    """None when `url` (bytes) can be sent exactly as it is, else the key of SKIP_REASONS."""
    if not url or any(b < 0x21 or b > 0x7e for b in url):
        return "bytes"
    text = url.decode("ascii")
    if not SAFE_URL.match(text):
        return "chars"
    if "/." in text or "//" in text:
        return "segments"
    return None


def wc98_sample(urls, count):
    """Every k-th sendable World Cup URL, `count` of them, and the skipped counts by reason."""
    return frontend_check.wc98_sample(urls, count, skip_reason, SKIP_REASONS)


def vibra_map(vibra_lab, urls, replication, hash_name, down=None):
    """`vibra-lab map` subsets for this test's SERVERS back ends."""
    return frontend_check.vibra_map(vibra_lab, urls, SERVERS, replication, hash_name, down)


def get(port, url):
    """(status, body, worker pid) of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_LIMIT_S)
    try:
        conn.request("GET", url, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read().decode(errors="replace").strip()
        return resp.status, body, resp.getheader("X-Worker")
    finally:
        conn.close()


def wait_for(what, predicate):
    frontend_check.wait_for(what, predicate, WAIT_LIMIT_S)


def pid_alive(pid):
    """Whether a process (here: one of our nginx's workers) still exists; signal 0 sends nothing."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def with_query(url, query):
    return url + ("&" if "?" in url else "?") + query


class Lab:
    """The back ends and nginx of one test run, all started and stopped here."""

    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="vibra-nginx-test-")
        self.backends = []
        self.ports = []
        self.nginx = None
        self.listen = {}

    def start_backends(self):
        for k in range(SERVERS):
            proc, port = self.start_backend(k, 0)
            self.backends.append(proc)
            self.ports.append(port)

    def start_backend(self, k, port):
        proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "backend.py"), "--name", f"backend{k}",
             "--port", str(port)],
            stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        if not line.strip().isdigit():
            proc.kill()
            raise RuntimeError(f"backend{k} did not report its port (got {line!r})")
        return proc, int(line)

    def restart_backend(self, k):
        self.backends[k], _ = self.start_backend(k, self.ports[k])

    def write_config(self):
        upstreams, servers = [], []
        for name, replication, hash_name in UPSTREAMS + [RECOVER]:
            timeout = RECOVER_TIMEOUT_S if name == RECOVER[0] else FAIL_TIMEOUT_S
            members = "".join(
                f"        server 127.0.0.1:{p} max_fails=1 fail_timeout={timeout}s;\n"
                for p in self.ports)
            upstreams.append(
                f"    upstream {name} {{\n"
                f"        zone {name} 64k;\n"
                f"        vibra_hash $request_uri replication={replication} hash={hash_name};\n"
                f"{members}    }}\n")
            self.listen[name] = free_port()
            servers.append(
                f"    server {{\n"
                f"        listen 127.0.0.1:{self.listen[name]} reuseport;\n"
                f"        location / {{\n"
                f"            proxy_pass http://{name};\n"
                f"            proxy_next_upstream error timeout;\n"
                f"            add_header X-Worker $pid always;\n"
                f"        }}\n"
                f"    }}\n")
        d = self.dir
        conf = (
            f"load_module {os.path.abspath(self.args.module)};\n"
            "daemon off;\n"
            "worker_processes 2;\n"
            f"pid {d}/nginx.pid;\n"
            f"error_log {d}/error.log info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            "    access_log off;\n"
            f"    client_body_temp_path {d}/body;\n"
            f"    proxy_temp_path {d}/proxy;\n"
            f"    fastcgi_temp_path {d}/fastcgi;\n"
            f"    uwsgi_temp_path {d}/uwsgi;\n"
            f"    scgi_temp_path {d}/scgi;\n"
            + "".join(upstreams) + "".join(servers) + "}\n")
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        if os.geteuid() == 0:
            # the workers run as "nobody": let them into the temporary paths
            os.chmod(d, 0o755)

    def start_nginx(self):
        conf = os.path.join(self.dir, "nginx.conf")
        test = subprocess.run([self.args.nginx, "-t", "-p", self.dir, "-c", conf],
                              capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError(f"nginx -t rejected the configuration:\n{test.stderr}")
        self.nginx = subprocess.Popen([self.args.nginx, "-p", self.dir, "-c", conf])
        for name in self.listen:
            port = self.listen[name]
            wait_for(f"nginx to answer on port {port}", lambda: self.answers(port))

    def answers(self, port):
        if self.nginx.poll() is not None:
            raise RuntimeError(f"nginx exited with status {self.nginx.returncode}")
        try:
            return get(port, "/")[0] == 200
        except OSError:
            return False

    def backend_get(self, k, path):
        return get(self.ports[k], path)[1]

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop_backend(self, k):
        proc = self.backends[k]
        proc.terminate()
        proc.wait(timeout=WAIT_LIMIT_S)

    def close(self):
        if self.nginx and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGTERM)
            try:
                self.nginx.wait(timeout=WAIT_LIMIT_S)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
        for proc in self.backends:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=WAIT_LIMIT_S)
        if self.args.keep:
            print(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def backend_number(body):
    return int(body[len("backend"):]) if body.startswith("backend") else None


def check_placement(t, lab, urls, maps, rounds):
    """Checks 1 and 2: every URL, `rounds` times, on the first server of its subset."""
    for name, _, _ in UPSTREAMS:
        port = lab.listen[name]
        unstable, misplaced, workers = [], [], set()
        for url, subset in zip(urls, maps[name]):
            seen = set()
            for _ in range(rounds):
                status, body, worker = get(port, url)
                workers.add(worker)
                seen.add((status, backend_number(body)))
            if len(seen) != 1:
                unstable.append(f"{url} -> {sorted(seen, key=str)}")
            elif seen != {(200, subset[0])}:
                misplaced.append(f"{url} -> {seen.pop()}, map says {subset}")
        t.check(not unstable,
                f"[{name}] each of {len(urls)} URLs lands on the same back end in "
                f"{rounds} requests (served by {len(workers)} worker processes)",
                "; ".join(unstable[:5]))
        t.check(not misplaced,
                f"[{name}] every URL lands on the first server of its `vibra-lab map` subset",
                "; ".join(misplaced[:5]))


def check_reload(t, lab, urls, maps):
    """After a configuration reload (SIGHUP), the new workers place every URL the same way."""
    name = UPSTREAMS[0][0]
    port = lab.listen[name]
    old_workers = {get(port, "/")[2] for _ in range(20)}
    lab.nginx.send_signal(signal.SIGHUP)
    # the old workers finish their requests and exit; wait (bounded) for new ones
    wait_for("new worker processes after the reload",
             lambda: get(port, "/")[2] not in old_workers)
    wrong, checked = [], 0
    for url, subset in zip(urls, maps[name]):
        # an old worker may still take a connection while it shuts down: ask again
        for _ in range(20):
            status, body, worker = get(port, url)
            if worker not in old_workers:
                checked += 1
                if (status, backend_number(body)) != (200, subset[0]):
                    wrong.append(f"{url} -> {status} {body}, map says {subset}")
                break
    # later checks count connections in the new zone: let the old workers go first
    wait_for("the old worker processes to exit",
             lambda: not any(pid_alive(int(w)) for w in old_workers if w))
    t.check(not wrong and checked == len(urls),
            f"[{name}] after a configuration reload every URL still lands where "
            f"`vibra-lab map` says ({checked} of {len(urls)} served by new workers)",
            "; ".join(wrong[:5]) or "some URLs never reached the new workers")


def check_least_loaded(t, lab, urls, maps):
    """Check 3: a held connection on server s diverts s-first subsets, in every worker."""
    name = "charsum"
    port = lab.listen[name]
    subsets = maps[name]
    s = subsets[0][0]
    hold_url = with_query(urls[0], "hold=1")
    result = {}

    def hold():
        try:
            result["hold"] = get(port, hold_url)
        except OSError as e:
            result["hold"] = (None, str(e), None)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        wait_for(f"backend{s} to hold one request",
                 lambda: lab.backend_get(s, "/_control/held") == "1")
        wrong, other_workers, workers = [], 0, set()
        # Repeat until a worker other than the holder's has served diverted
        # requests too; reuseport spreads connections, so this takes one round
        # in practice, and the bound keeps it finite.
        for _ in range(20):
            diverted_by = set()
            for url, subset in zip(urls, subsets):
                expect = subset[1] if subset[0] == s else subset[0]
                status, body, worker = get(port, url)
                workers.add(worker)
                if (status, backend_number(body)) != (200, expect):
                    wrong.append(f"{url} -> {status} {body}, expected backend{expect} "
                                 f"(subset {subset}, backend{s} busy)")
                elif subset[0] == s:
                    diverted_by.add(worker)
            other_workers = len(diverted_by)
            if other_workers >= 2 or wrong:
                break
    finally:
        lab.backend_get(s, "/_control/release")
        holder.join(WAIT_LIMIT_S)
    diverted = sum(1 for subset in subsets if subset[0] == s)
    t.check(not wrong,
            f"[{name}] with one request held on backend{s}, the {diverted} URLs whose subset "
            f"starts with it go to the next member, all others stay",
            "; ".join(wrong[:5]))
    hold_status, hold_body, hold_worker = result.get("hold", (None, "no answer", None))
    t.check(hold_status == 200 and backend_number(hold_body) == s,
            f"[{name}] the held request itself was served by backend{s}",
            f"{hold_status} {hold_body}")
    t.check(other_workers >= 2,
            f"[{name}] both worker processes saw the held connection (shared-memory counts): "
            f"diverted requests were served by {other_workers} workers, holder {hold_worker}",
            f"workers seen {sorted(w or '?' for w in workers)}")
    # back to equal loads before the next check: the held connection is released
    wait_for(f"{urls[0]} to return to backend{s}",
             lambda: backend_number(get(port, urls[0])[1]) == s)


def check_failure(t, lab, urls, maps, maps_down):
    """Check 4: stop one back end; only its URLs move, to where the map says."""
    k = STOPPED
    before = lab.error_log().count("connect() failed")
    lab.stop_backend(k)
    for name, _, _ in UPSTREAMS:
        port = lab.listen[name]
        moved_wrong, stayed_wrong, moved = [], [], 0
        for round_ in range(2):
            for url, old, new in zip(urls, maps[name], maps_down[name]):
                status, body, _ = get(port, url)
                got = (status, backend_number(body))
                if old[0] == k:
                    moved += round_ == 0
                    if got != (200, new[0]):
                        moved_wrong.append(f"{url} -> {got}, map --down {k} says {new}")
                elif got != (200, old[0]):
                    stayed_wrong.append(f"{url} -> {got}, was on backend{old[0]}")
        t.check(not stayed_wrong,
                f"[{name}] with backend{k} stopped, every URL that was not on it stays put",
                "; ".join(stayed_wrong[:5]))
        t.check(moved > 0 and not moved_wrong,
                f"[{name}] the {moved} URLs that were on backend{k} move to where "
                f"`vibra-lab map --down {k}` says",
                "; ".join(moved_wrong[:5]) or "no URL was on it")
    attempts = lab.error_log().count("connect() failed") - before
    t.check(attempts == len(UPSTREAMS),
            f"the stopped backend{k} was tried once per upstream ({attempts} connect failures "
            f"for {len(UPSTREAMS)} upstreams): max_fails=1 marked it down for all workers",
            "see the error log")
    t.check("upstream server temporarily disabled" in lab.error_log(),
            "nginx logged the peer as temporarily disabled")


def check_recovery(t, lab, urls, maps, maps_down):
    """After fail_timeout, a restarted back end is probed and gets its URLs back."""
    k = STOPPED
    name = RECOVER[0]
    port = lab.listen[name]
    mine = [u for u, old in zip(urls, maps[name]) if old[0] == k]
    moved = {u: new[0] for u, old, new in zip(urls, maps[name], maps_down[name]) if old[0] == k}
    away = [(u, get(port, u)) for u in mine]
    wrong = [f"{u} -> {r[:2]}" for u, r in away if (r[0], backend_number(r[1])) != (200, moved[u])]
    t.check(not wrong,
            f"[{name}] while backend{k} is stopped its {len(mine)} URLs are served by "
            f"the next member of their subsets", "; ".join(wrong[:5]))
    lab.restart_backend(k)
    # fail_timeout is 1 s here: poll (bounded) until the probe has brought it back
    wait_for(f"backend{k} to get {mine[0]} back",
             lambda: backend_number(get(port, mine[0])[1]) == k)
    wrong = []
    for url, subset in zip(urls, maps[name]):
        status, body, _ = get(port, url)
        if (status, backend_number(body)) != (200, subset[0]):
            wrong.append(f"{url} -> {status} {body}, map says {subset}")
    t.check(not wrong,
            f"[{name}] after fail_timeout the restarted backend{k} is probed and every URL is "
            f"back where `vibra-lab map` says", "; ".join(wrong[:5]))


def check_config_errors(t, lab):
    """nginx refuses what the module cannot honour, with a message naming it."""
    cases = [
        ("no zone", "vibra_hash $request_uri;", "needs a \"zone\" directive"),
        ("replication above N", "zone z 64k; vibra_hash $request_uri replication=5;",
         "replication=5 exceeds the 4 servers"),
        ("unknown hash", "zone z 64k; vibra_hash $request_uri hash=crc32;",
         "invalid parameter \"hash=crc32\""),
        ("weight", "zone z 64k; vibra_hash $request_uri; server 127.0.0.1:9 weight=2;",
         "does not support parameter \"weight=2\""),
        ("weight before the directive",
         "zone z 64k; server 127.0.0.1:9 weight=2; vibra_hash $request_uri;",
         "does not support \"weight\""),
    ]
    servers = "".join(f"server 127.0.0.1:{p};" for p in lab.ports)
    for what, body, message in cases:
        conf = os.path.join(lab.dir, "refused.conf")
        with open(conf, "w") as f:
            f.write(f"load_module {os.path.abspath(lab.args.module)};\n"
                    "events {}\n"
                    f"http {{ upstream u {{ {body} {servers} }}\n"
                    "  server { listen 127.0.0.1:9; location / { proxy_pass http://u; } } }\n")
        run = subprocess.run([lab.args.nginx, "-t", "-q", "-p", lab.dir, "-c", conf,
                              "-g", f"pid {lab.dir}/refused.pid; error_log stderr;"],
                             capture_output=True, text=True)
        t.check(run.returncode != 0 and message in run.stderr,
                f"nginx -t refuses the configuration with {what}: {message}",
                run.stderr.strip() or f"exit status {run.returncode}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", required=True, help="ngx_http_upstream_vibra_module.so")
    parser.add_argument("--vibra-lab", required=True, help="the vibra-lab command")
    parser.add_argument("--nginx", default="nginx", help="the nginx binary (default: nginx)")
    parser.add_argument("--wc98-urls", metavar="FILE",
                        help="the World Cup 98 URLs as `cargo run -p wc98 --bin wc98-urls` "
                        "prints them: adds a sample of them to the synthetic URLs")
    parser.add_argument("--wc98-count", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    urls = synthetic_urls()
    if args.wc98_urls:
        real = read_wc98_urls(args.wc98_urls)
        sample, skipped = wc98_sample(real, args.wc98_count)
        print(f"World Cup URLs: {len(real)} read, {len(sample)} sampled from the "
              f"{len(real) - sum(skipped.values())} sendable byte for byte; skipped (never "
              "altered): " + "; ".join(f"{n} with {SKIP_REASONS[r]}" for r, n in skipped.items()),
              flush=True)
        if not sample:
            raise SystemExit("no World Cup URL can be sent as it is: is that wc98-urls output?")
        urls += sample
    maps = {n: vibra_map(args.vibra_lab, urls, r, h) for n, r, h in UPSTREAMS + [RECOVER]}
    maps_down = {n: vibra_map(args.vibra_lab, urls, r, h, down=STOPPED)
                 for n, r, h in UPSTREAMS + [RECOVER]}
    print(f"{len(urls)} URLs, {SERVERS} back ends, upstreams "
          + ", ".join(f"{n} (replication={r}, hash={h})" for n, r, h in UPSTREAMS), flush=True)

    t = Checks()
    lab = Lab(args)
    try:
        lab.start_backends()
        lab.write_config()
        check_config_errors(t, lab)
        lab.start_nginx()
        check_placement(t, lab, urls, maps, rounds=3)
        check_reload(t, lab, urls, maps)
        check_least_loaded(t, lab, urls, maps)
        check_failure(t, lab, urls, maps, maps_down)
        check_recovery(t, lab, urls, maps, maps_down)
    except Exception as e:  # report, then fail the run with the log
        t.check(False, "the test ran to the end", f"{type(e).__name__}: {e}")
    finally:
        if t.failed:
            print("---- nginx error log (last 40 lines) ----")
            print("\n".join(lab.error_log().splitlines()[-40:]))
        lab.close()
    print(f"{t.passed} passed, {t.failed} failed")
    sys.exit(1 if t.failed else 0)


if __name__ == "__main__":
    main()
