#!/usr/bin/env python3
"""A small real HTTP back end for the module's test: answers every request with
its own name, so the test can see which back end nginx chose.

It listens on 127.0.0.1 on a port the kernel picks (port 0; or --port, to
restart a back end where it was) and prints that port on its first line of
standard output. A request whose query string holds
`hold=1` is kept open (it counts as an active connection in nginx) until
`/_control/release` is requested directly; `/_control/held` reports how many
requests are being held. Standard library only.
"""

import argparse
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# A held request gives up after this long, so a failed test never leaves a
# back end blocked for ever (the test releases it long before).
HOLD_LIMIT_S = 120


class State:
    """Requests being held, and the release generation they wait for."""

    def __init__(self):
        self.cond = threading.Condition()
        self.held = 0
        self.generation = 0


def make_handler(name, state):
    class Handler(BaseHTTPRequestHandler):
        server_version = "vibra-test-backend"

        def log_message(self, *args):  # keep the test output readable
            pass

        def reply(self, body):
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Backend", name)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/_control/held":
                with state.cond:
                    self.reply(f"{state.held}\n")
                return
            if url.path == "/_control/release":
                with state.cond:
                    state.generation += 1
                    state.cond.notify_all()
                self.reply("released\n")
                return
            if parse_qs(url.query).get("hold") == ["1"]:
                with state.cond:
                    state.held += 1
                    generation = state.generation
                    state.cond.wait_for(
                        lambda: state.generation != generation, HOLD_LIMIT_S
                    )
                    state.held -= 1
            self.reply(f"{name}\n")

    return Handler


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--name", required=True, help="the body every answer carries")
    parser.add_argument("--port", type=int, default=0,
                        help="the port to listen on (default 0: the kernel picks one)")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.name, State()))
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
