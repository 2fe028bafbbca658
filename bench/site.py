"""A static benchmark site: one process per loopback domain, logging each request's arrival time
and answering 429 when a request comes sooner than --min-gap after the previous one."""

from __future__ import annotations

import argparse
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--min-gap", type=float, default=0.0)
    args = parser.parse_args()
    lock = threading.Lock()
    last = [0.0]
    log = args.log.open("a", buffering=1)

    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            now = time.time()
            with lock:
                too_soon = args.min_gap and now - last[0] < args.min_gap
                last[0] = now
                log.write(f"{now:.6f} {self.path}\n")
            if too_soon:
                self.send_response(429)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, format: str, *a: object) -> None:
            pass

    server = ThreadingHTTPServer((args.host, args.port), partial(Handler, directory=str(args.root)))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
