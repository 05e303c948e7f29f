#!/usr/bin/env python3
"""Minimal passive BGP speaker that records what a real peer sends (Python 3 stdlib only).

It listens on ADDR:PORT, accepts one connection, reads the peer's OPEN, answers with its own
OPEN (AS 65515, hold 90, capabilities: multiprotocol IPv4 unicast [+ IPv6 unicast with --ipv6],
route refresh, 4-octet AS 65515) and a KEEPALIVE, keeps sending KEEPALIVEs (every hold/3 s),
and writes every message it receives, raw and complete (19-byte header included), to
OUT/NAME_<kind>.bin:

    NAME_open.bin            the peer's OPEN
    NAME_keepalive.bin       the first KEEPALIVE (later ones are identical and not kept)
    NAME_update_<n>.bin      every UPDATE, n = 1, 2, ... in arrival order
    NAME_notification.bin    a NOTIFICATION, if the peer sends one
    NAME_route_refresh_<n>.bin, NAME_type<t>_<n>.bin   anything else

It stops once at least --min-updates UPDATEs arrived and none came for --quiet seconds (or
after --timeout seconds in total), sends NOTIFICATION Cease / Administrative Shutdown (6/2)
and closes. --ready-file is created when the session is Established (the peer's first
KEEPALIVE arrived), so a driver knows when to inject routes.

Usage: capture_peer.py --listen 10.1.1.4 --out DIR --name frr [--port 179] [--ipv6]
"""

import argparse
import os
import select
import socket
import struct
import sys
import time

MARKER = b"\xff" * 16
OPEN, UPDATE, NOTIFICATION, KEEPALIVE, ROUTE_REFRESH = 1, 2, 3, 4, 5


def message(msg_type, body=b""):
    return MARKER + struct.pack("!HB", 19 + len(body), msg_type) + body


def capability(code, value):
    return struct.pack("!BB", code, len(value)) + value


def our_open(asn, hold, router_id, ipv6):
    caps = capability(1, struct.pack("!HBB", 1, 0, 1))  # MP: AFI 1 IPv4, SAFI 1 unicast
    if ipv6:
        caps += capability(1, struct.pack("!HBB", 2, 0, 1))  # MP: AFI 2 IPv6, SAFI 1
    caps += capability(2, b"")  # route refresh (RFC 2918)
    caps += capability(65, struct.pack("!I", asn))  # 4-octet AS (RFC 6793)
    # One optional parameter of type 2 (capabilities) holding all of them.
    params = struct.pack("!BB", 2, len(caps)) + caps
    my_as = asn if asn < 65536 else 23456  # AS_TRANS
    body = struct.pack("!BHH4sB", 4, my_as, hold, socket.inet_aton(router_id), len(params))
    return message(OPEN, body + params)


def recv_exact(sock, n, deadline):
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out inside a message")
        sock.settimeout(left)
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("peer closed the connection")
        buf += chunk
    return buf


def read_message(sock, deadline):
    header = recv_exact(sock, 19, deadline)
    if header[:16] != MARKER:
        raise ValueError("bad marker: %s" % header[:16].hex())
    length, msg_type = struct.unpack("!HB", header[16:19])
    if not 19 <= length <= 65535:
        raise ValueError("bad length %d" % length)
    return msg_type, header + recv_exact(sock, length - 19, deadline)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, help="address to listen on")
    ap.add_argument("--port", type=int, default=179)
    ap.add_argument("--asn", type=int, default=65515)
    ap.add_argument("--router-id", default="10.1.1.4")
    ap.add_argument("--hold", type=int, default=90)
    ap.add_argument("--ipv6", action="store_true", help="also offer MP IPv6 unicast")
    ap.add_argument("--out", required=True, help="directory for the .bin files")
    ap.add_argument("--name", required=True, help="file name prefix, e.g. frr")
    ap.add_argument("--min-updates", type=int, default=1)
    ap.add_argument("--quiet", type=float, default=4.0)
    ap.add_argument("--timeout", type=float, default=90.0)
    ap.add_argument("--ready-file")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    family = socket.AF_INET6 if ":" in args.listen else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.listen, args.port))
    listener.listen(1)
    start = time.monotonic()
    deadline = start + args.timeout
    listener.settimeout(args.timeout)
    sock, peer = listener.accept()
    listener.close()
    log = lambda text: print("capture_peer[%s]: %s" % (args.name, text), file=sys.stderr, flush=True)
    log("connection from %s:%d" % peer[:2])

    counts = {}
    updates = 0
    last_update = None
    established = False
    keepalive_every = max(1.0, args.hold / 3)
    next_keepalive = None

    def save(kind, data, numbered):
        counts[kind] = counts.get(kind, 0) + 1
        name = "%s_%s_%d.bin" % (args.name, kind, counts[kind]) if numbered else "%s_%s.bin" % (args.name, kind)
        with open(os.path.join(args.out, name), "wb") as f:
            f.write(data)
        log("wrote %s (%d bytes)" % (name, len(data)))

    msg_type, data = read_message(sock, deadline)
    if msg_type != OPEN:
        raise SystemExit("first message is type %d, not OPEN" % msg_type)
    save("open", data, False)
    sock.sendall(our_open(args.asn, args.hold, args.router_id, args.ipv6) + message(KEEPALIVE))
    next_keepalive = time.monotonic() + keepalive_every

    while True:
        now = time.monotonic()
        if now >= deadline:
            log("overall timeout")
            break
        if updates >= args.min_updates and last_update is not None and now - last_update >= args.quiet:
            break
        if now >= next_keepalive:
            sock.sendall(message(KEEPALIVE))
            next_keepalive = now + keepalive_every
        ready, _, _ = select.select([sock], [], [], 0.2)
        if not ready:
            continue
        msg_type, data = read_message(sock, deadline)
        if msg_type == KEEPALIVE:
            if not established:
                save("keepalive", data, False)
            if not established:
                established = True
                log("established")
                if args.ready_file:
                    open(args.ready_file, "w").close()
        elif msg_type == UPDATE:
            updates += 1
            last_update = time.monotonic()
            save("update", data, True)
        elif msg_type == NOTIFICATION:
            save("notification", data, False)
            log("peer sent NOTIFICATION %s" % data[19:].hex())
            sock.close()
            return 1
        elif msg_type == ROUTE_REFRESH:
            save("route_refresh", data, True)
        else:
            save("type%d" % msg_type, data, True)

    # Cease (6) / Administrative Shutdown (2), RFC 4486.
    sock.sendall(message(NOTIFICATION, b"\x06\x02"))
    time.sleep(0.2)
    sock.close()
    log("done: %d UPDATEs" % updates)
    return 0 if updates >= args.min_updates else 1


if __name__ == "__main__":
    sys.exit(main())
