"""What every front-end test shares (the nginx module's, the HAProxy route's): the check tally,
loopback ports, the World Cup URLs that wc98-urls wrote, the sample of them a front end can
carry byte for byte, `vibra-lab map` as the reference, and bounded waits.

Each test keeps what is its own: which URLs its front end can carry (`skip_reason`), how it
sends a request, how it starts and stops its server.
"""

import socket
import subprocess
import time


class Checks:
    """Counts and prints `ok - ...` / `FAIL - ...` lines; the caller exits non-zero on failures."""

    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print(f"ok - {what}", flush=True)
        else:
            self.failed += 1
            print(f"FAIL - {what}" + (f": {detail}" if detail else ""), flush=True)
        return ok


def free_port():
    """A loopback port that was free a moment ago (servers need a number in their config)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_wc98_urls(path):
    """The URLs of a file `wc98-urls` wrote (the workspace's one reader of the World Cup list,
    the wc98 crate): one URL per `\\n`-terminated line, every other byte part of the URL, so
    nothing is split or stripped here (a trailing blank or CR is part of its URL)."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.endswith(b"\n"):
        raise RuntimeError(f"{path}: not wc98-urls output (no final newline)")
    return data[:-1].split(b"\n")


def wc98_sample(urls, count, skip_reason, reasons):
    """Every k-th of the URLs that can be sent byte for byte (`skip_reason(url)` is None),
    `count` of them, and how many were skipped for each of `reasons` (printed by the caller:
    nothing is dropped silently)."""
    sendable, skipped = [], {reason: 0 for reason in reasons}
    for url in urls:
        reason = skip_reason(url)
        if reason is None:
            sendable.append(url.decode("ascii"))
        else:
            skipped[reason] += 1
    step = max(1, len(sendable) // count)
    return sendable[::step][:count], skipped


def vibra_map(vibra_lab, urls, servers, replication, hash_name, down=None):
    """`vibra-lab map` subsets (SPEC 9), one list of server numbers per URL."""
    cmd = [vibra_lab, "map", "--servers", str(servers), "--replication", str(replication),
           "--hash", hash_name]
    if down is not None:
        cmd += ["--down", str(down)]
    out = subprocess.run(cmd, input="".join(u + "\n" for u in urls),
                         capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    if len(lines) != len(urls):
        raise RuntimeError(f"{' '.join(cmd)} printed {len(lines)} lines for {len(urls)} URLs")
    return [[int(s) for s in line.split()[1].split(",")] for line in lines]


def wait_for(what, predicate, limit_s):
    """Polls `predicate` until it holds; gives up with an error after `limit_s` seconds (a bound
    on a wait, never a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"gave up waiting for {what} after {limit_s} s")
