#!/usr/bin/env python3
"""The lab's small servers (standard library only).

  serve.py health ADDRS PORT LOG  HTTP health endpoint of an NVA: GET /health -> 200 "ok".
                                  ADDRS: one address, or several comma-separated (an IPv4
                                  and an IPv6 one: both load balancers probe the one process).
                                  Every answered request is appended to LOG as
                                  "<unix time, 6 decimals> <status> <client>", so the time of
                                  the last successful probe is known to the microsecond.
  serve.py branch ADDRS           the branch host: TCP echo on ADDR:7 (each connection is echoed
                                  until the client closes it, so it can live as long as a test
                                  wants) and HTTP on ADDR:80 ("hello from the branch"), for
                                  each of the comma-separated ADDRS.
"""

import http.server
import select
import socket
import socketserver
import sys
import threading
import time


def serve_health(addr, port, log):
    """One thread, one accept at a time: a probe is answered with a single write (no thread to
    start, no second segment waiting on Nagle), so the answer stays well under a 100 ms probe
    timeout even on a busy machine."""
    out = open(log, "a", buffering=1)
    listeners = []
    for a in addr.split(","):
        srv = socket.socket(family(a), socket.SOCK_STREAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((a, port))
        srv.listen(128)
        listeners.append(srv)
    while True:
        ready, _, _ = select.select(listeners, [], [])
        for srv in ready:
            answer(srv, out)


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def answer(srv, out):
    conn, peer = srv.accept()
    try:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(1.0)
        request = b""
        while b"\r\n\r\n" not in request and len(request) < 8192:
            chunk = conn.recv(4096)
            if not chunk:
                break
            request += chunk
        line = request.split(b"\r\n", 1)[0].split()
        path = line[1].split(b"?")[0] if len(line) > 1 else b""
        status, reason, body = (200, "OK", b"ok\n") if path == b"/health" else (404, "Not Found", b"not found\n")
        conn.sendall(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        )
        out.write(f"{time.time():.6f} {status} {peer[0]}\n")
    except OSError:
        pass
    finally:
        conn.close()


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


class Threaded6(Threaded):
    address_family = socket.AF_INET6


class Http6(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6


def serve(server):
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    return t


def main(argv):
    if len(argv) == 5 and argv[1] == "health":
        serve_health(argv[2], int(argv[3]), argv[4])
    elif len(argv) == 3 and argv[1] == "branch":
        threads = []
        for addr in argv[2].split(","):
            v6 = family(addr) == socket.AF_INET6
            threads += [
                serve((Threaded6 if v6 else Threaded)((addr, 7), Echo)),
                serve((Http6 if v6 else http.server.ThreadingHTTPServer)((addr, 80), Hello)),
            ]
        for t in threads:
            t.join()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
