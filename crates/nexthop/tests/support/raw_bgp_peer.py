#!/usr/bin/env python3
"""A minimal, scriptable BGP speaker for end-to-end tests (Python 3 stdlib only).

It binds a source address, connects, sends OPEN, answers the peer's OPEN with KEEPALIVE and,
once the session is up, runs the steps given on the command line in order:

    hex:FFFF...      send these bytes as they are (a whole BGP message, header included)
    sleep:SECONDS    pause
    wait:PATH        pause until PATH exists (the test creates it when it is done checking)

Every message received is printed as one JSON line, e.g.
    {"type": "OPEN", "asn": 65515, "hold": 180, "id": "10.1.1.4"}
    {"type": "UPDATE", "len": 52}
    {"type": "NOTIFICATION", "code": 3, "subcode": 10, "data": ""}
and so are its own milestones: {"event": "established"}, {"event": "sent", "step": N},
{"event": "eof"}, {"event": "done"}. It keeps the session alive with KEEPALIVEs until the
steps are done and --linger seconds have passed, the peer closes, or it is killed.
"""

import argparse
import json
import os
import socket
import struct
import sys
import threading
import time

MARKER = b"\xff" * 16
TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}

out_lock = threading.Lock()
send_lock = threading.Lock()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
        sys.stdout.flush()


def message(kind, body=b""):
    return MARKER + struct.pack("!HB", 19 + len(body), kind) + body


def open_message(asn, hold, router_id):
    # Capabilities: MP-BGP IPv4 unicast (1) and 4-octet AS (65).
    caps = bytes([1, 4, 0, 1, 0, 1]) + bytes([65, 4]) + struct.pack("!I", asn)
    params = bytes([2, len(caps)]) + caps
    my_as = asn if asn < 65536 else 23456
    body = struct.pack("!BHH", 4, my_as, hold) + socket.inet_aton(router_id)
    body += bytes([len(params)]) + params
    return message(1, body)


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def describe(kind, body):
    d = {"type": TYPES.get(kind, str(kind))}
    if kind == 1 and len(body) >= 10:
        d["asn"], d["hold"] = struct.unpack("!HH", body[1:5])
        d["id"] = socket.inet_ntoa(body[5:9])
    elif kind == 3 and len(body) >= 2:
        d["code"], d["subcode"] = body[0], body[1]
        d["data"] = body[2:].hex()
    elif kind == 2:
        d["len"] = len(body)
    return d


def send(sock, data):
    with send_lock:
        sock.sendall(data)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--local", required=True)
    ap.add_argument("--remote", required=True)
    ap.add_argument("--port", type=int, default=179)
    ap.add_argument("--asn", type=int, required=True)
    ap.add_argument("--router-id", required=True)
    ap.add_argument("--hold", type=int, default=90)
    ap.add_argument("--linger", type=float, default=3600)
    ap.add_argument("--connect-timeout", type=float, default=60)
    ap.add_argument("steps", nargs="*")
    a = ap.parse_args()

    # The route server may refuse us for a while (back-off); retry the connection.
    deadline = time.time() + a.connect_timeout
    while True:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((a.local, 0))
        sock.settimeout(5)
        try:
            sock.connect((a.remote, a.port))
            break
        except OSError as e:
            sock.close()
            if time.time() >= deadline:
                emit({"event": "connect-failed", "error": str(e)})
                return 1
            time.sleep(1)
    sock.settimeout(None)
    emit({"event": "connected"})
    send(sock, open_message(a.asn, a.hold, a.router_id))

    established = threading.Event()
    closed = threading.Event()

    def reader():
        got_open = False
        while True:
            try:
                hdr = recv_exact(sock, 19)
            except OSError as e:
                emit({"event": "eof", "error": str(e)})
                break
            if hdr is None:
                emit({"event": "eof"})
                break
            length, kind = struct.unpack("!HB", hdr[16:19])
            try:
                body = recv_exact(sock, length - 19) if length > 19 else b""
            except OSError as e:
                emit({"event": "eof", "error": str(e)})
                break
            if body is None:
                emit({"event": "eof", "error": "closed mid-message"})
                break
            emit(describe(kind, body))
            if kind == 1 and not got_open:
                got_open = True
                send(sock, message(4))
            elif kind == 4 and got_open and not established.is_set():
                established.set()
                emit({"event": "established"})
            elif kind == 3:
                break
        closed.set()
        established.set()  # wake the main thread

    def keepalive():
        while not closed.wait(max(1.0, a.hold / 3.0)):
            try:
                send(sock, message(4))
            except OSError:
                return

    threading.Thread(target=reader, daemon=True).start()
    threading.Thread(target=keepalive, daemon=True).start()

    established.wait(60)
    if closed.is_set() or not established.is_set():
        emit({"event": "done", "established": False})
        return 1

    for i, step in enumerate(a.steps):
        kind, _, arg = step.partition(":")
        if closed.is_set():
            break
        if kind == "hex":
            try:
                send(sock, bytes.fromhex(arg))
            except OSError as e:
                emit({"event": "send-failed", "step": i, "error": str(e)})
                break
            emit({"event": "sent", "step": i})
        elif kind == "sleep":
            closed.wait(float(arg))
        elif kind == "wait":
            while not closed.is_set() and not os.path.exists(arg):
                time.sleep(0.1)
        else:
            emit({"event": "bad-step", "step": i, "text": step})
            return 2

    closed.wait(a.linger)
    emit({"event": "done"})
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
