#!/usr/bin/env python3
"""The lab's small servers (standard library only).

  serve.py health ADDR PORT LOG   HTTP health endpoint of an NVA: GET /health -> 200 "ok".
                                  Every answered request is appended to LOG as
                                  "<unix time, 6 decimals> <status> <client>", so the time of
                                  the last successful probe is known to the microsecond.
  serve.py branch ADDR            the branch host: TCP echo on ADDR:7 (each connection is echoed
                                  until the client closes it, so it can live as long as a test
                                  wants) and HTTP on ADDR:80 ("hello from the branch").
"""

import http.server
import socketserver
import sys
import threading
import time


class Health(http.server.BaseHTTPRequestHandler):
    log_file = None

    def do_GET(self):
        status = 200 if self.path.split("?")[0] == "/health" else 404
        body = b"ok\n" if status == 200 else b"not found\n"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        Health.log_file.write(f"{time.time():.6f} {status} {self.client_address[0]}\n")
        Health.log_file.flush()

    def log_message(self, *args):
        pass


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from the branch, {self.client_address[0]}:{self.client_address[1]}\n"
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class Threaded(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def serve(server):
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return t


def main(argv):
    if len(argv) == 5 and argv[1] == "health":
        addr, port, log = argv[2], int(argv[3]), argv[4]
        Health.log_file = open(log, "a", buffering=1)
        server = http.server.ThreadingHTTPServer((addr, port), Health)
        server.daemon_threads = True
        server.serve_forever()
    elif len(argv) == 3 and argv[1] == "branch":
        addr = argv[2]
        threads = [
            serve(Threaded((addr, 7), Echo)),
            serve(http.server.ThreadingHTTPServer((addr, 80), Hello)),
        ]
        for t in threads:
            t.join()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
