#!/usr/bin/env python3
"""Drives headless Chromium (Debian's chromium + chromium-driver) through the W3C WebDriver
protocol, standard library only, against the web console of a running `nexthop demo`:

    console_browser.py CHROMEDRIVER_URL CONSOLE_URL OUTDIR

1. Opens the console (CONSOLE_URL's fragment asks for a looking-glass search and a trace: a
   shared link) and waits until the live page shows both instances' sessions with both NVAs
   Established (4 rows), the route 192.168.10.0/24 via 10.1.0.100 through nva-ilb, nva1
   (127.0.2.10) the active backend, the routes covering the searched address and the traced
   flow's backend; saves OUTDIR/console-before.png.
2. Without reloading, waits until the page shows nva2 (127.0.2.11) active, a failover in the
   timeline and the trace answering nva2; checks the page was not reloaded (the id the page drew at load is the same);
   saves OUTDIR/console-after.png.

Prints what it saw at each step; exits 1 (with the page's state) when a step times out.
"""
import base64
import json
import os
import sys
import time
import urllib.request

# What the page shows, read off its DOM (the data-* attributes the console sets).
STATE_JS = """
const q = (s) => Array.from(document.querySelectorAll(s));
const route = q('tr.route[data-prefix="192.168.10.0/24"]')[0];
const active = q('tr.backend[data-lb="nva-ilb"][data-role="active"]').map((r) => r.dataset.address);
return {
  loadId: window.__consoleLoadId || null,
  established: q('tr.peer[data-state="Established"]').length,
  peers: q('tr.peer').map((r) => r.dataset.instance + '/' + r.dataset.peer + '=' + r.dataset.state),
  route: route ? route.innerText.replace(/\\s+/g, ' ').trim() : null,
  active: active,
  failovers: q('#timeline li[data-kind="failover"]').map((l) => l.innerText.replace(/\\s+/g, ' ').trim()),
  timeline: q('#timeline li').length,
  status: document.querySelector('#status').textContent,
  lookingGlass: q('tr.lg-route').map((r) => r.dataset.peer + ' ' + r.dataset.direction),
  trace: document.querySelector('#trace-out').innerText,
};
"""


# [name, holds] for the console's parseIp / parsePrefix / covers.
PARSER_JS = """
const ip = (s) => parseIp(s), n = (s) => parsePrefix(s);
return [
  ['v4', ip('192.168.10.7') && ip('192.168.10.7').n === 0xc0a80a07n],
  ['v4 bad octet', ip('192.168.10.256') === null],
  ['v4 empty octet', ip('10..1.2') === null],
  ['v6 full', ip('fd00:10:0:0:0:0:0:1').n === ip('fd00:10::1').n],
  ['v6 group too long', ip('fd00:12345::1') === null],
  ['v6 junk', ip('fd00::1g') === null],
  ['v6 two ::', ip('fd00::1::2') === null],
  ['v6 :: with 8 groups', ip('1:2:3:4::5:6:7:8') === null],
  ['v6 embedded v4 refused', ip('::ffff:1.2.3.4') === null],
  ['covers address', covers('192.168.10.0/24', ip('192.168.10.7'))],
  ['not 110/8', !covers('10.0.0.0/8', ip('110.0.0.1'))],
  ['default covers', covers('0.0.0.0/0', ip('8.8.8.8'))],
  ['families apart', !covers('0.0.0.0/0', ip('::1'))],
  ['v6 covers', covers('fd00:10::/48', ip('fd00:10::7'))],
  ['v6 not', !covers('fd00:10::/48', ip('fd00:11::7'))],
  ['prefix in prefix', covers('192.168.0.0/16', n('192.168.10.0/24'))],
  ['longer not covered by shorter query', !covers('192.168.10.0/24', n('192.168.0.0/16'))],
  ['bad length', n('10.0.0.0/33') === null],
];
"""


def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")["value"]


def wait_for(session, what, ok, timeout):
    deadline = time.time() + timeout
    state = None
    while time.time() < deadline:
        state = call("POST", session + "/execute/sync", {"script": STATE_JS, "args": []})
        if ok(state):
            print(f"{what}: {json.dumps(state)}")
            return state
        time.sleep(0.2)
    print(f"timed out waiting for {what}; the page shows: {json.dumps(state, indent=1)}")
    sys.exit(1)


def screenshot(session, path):
    png = base64.b64decode(call("GET", session + "/screenshot"))
    with open(path, "wb") as f:
        f.write(png)
    print(f"screenshot: {path} ({len(png)} bytes)")


def main():
    driver, console, outdir = sys.argv[1:4]
    os.makedirs(outdir, exist_ok=True)
    caps = {"capabilities": {"alwaysMatch": {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1500", "--hide-scrollbars"],
        },
    }}}
    session_id = call("POST", driver + "/session", caps)["sessionId"]
    session = f"{driver}/session/{session_id}"
    try:
        call("POST", session + "/url", {"url": console})
        # The looking glass's own address logic, in the browser that runs it.
        checks = call("POST", session + "/execute/sync", {"script": PARSER_JS, "args": []})
        bad = [c for c in checks if not c[1]]
        print(f"address parser checks: {len(checks) - len(bad)} of {len(checks)} hold")
        if bad:
            print(f"failed: {bad}")
            sys.exit(1)
        before = wait_for(session, "before the failover", lambda s: (
            s["established"] == 4
            and s["route"] is not None and "10.1.0.100" in s["route"] and "nva-ilb" in s["route"]
            and s["active"] == ["127.0.2.10"]
            # The link's fragment searched the looking glass and traced a flow at load.
            and len(s["lookingGlass"]) >= 4 and "backend 127.0.2.10" in s["trace"]), 30)
        screenshot(session, os.path.join(outdir, "console-before.png"))
        after = wait_for(session, "after the failover", lambda s: (
            s["active"] == ["127.0.2.11"] and len(s["failovers"]) > 0
            and "backend 127.0.2.11" in s["trace"]), 40)
        if after["loadId"] != before["loadId"]:
            print(f"the page was reloaded: load id {before['loadId']} then {after['loadId']}")
            sys.exit(1)
        screenshot(session, os.path.join(outdir, "console-after.png"))
        print("the page followed the failover without a reload")
    finally:
        call("DELETE", session)


if __name__ == "__main__":
    main()
