#!/usr/bin/env python3
"""Decodes raw BGP messages (one per file, 19-byte header included) field by field, with byte
offsets, for the fixtures README. Python 3 stdlib only.

AS_PATH and AGGREGATOR are decoded with 4-octet ASNs: every fixture session negotiated the
4-octet AS capability (RFC 6793), so that is how the sender encoded them.

Usage: bgp_decode.py [--markdown] FILE...
"""

import ipaddress
import struct
import sys

MSG_TYPES = {1: "OPEN", 2: "UPDATE", 3: "NOTIFICATION", 4: "KEEPALIVE", 5: "ROUTE-REFRESH"}
AFI = {1: "IPv4", 2: "IPv6"}
SAFI = {1: "unicast", 2: "multicast", 4: "labeled", 128: "mpls-vpn"}
CAPS = {
    1: "Multiprotocol Extensions (RFC 4760)",
    2: "Route Refresh (RFC 2918)",
    5: "Extended Next Hop Encoding (RFC 8950)",
    6: "Extended Message (RFC 8654)",
    9: "BGP Role (RFC 9234)",
    64: "Graceful Restart (RFC 4724)",
    65: "4-octet AS number (RFC 6793)",
    69: "ADD-PATH (RFC 7911)",
    70: "Enhanced Route Refresh (RFC 7313)",
    71: "Long-Lived Graceful Restart (RFC 9494)",
    73: "FQDN (draft-walton-bgp-hostname-capability)",
    128: "Route Refresh, pre-standard Cisco code",
}
ATTRS = {
    1: "ORIGIN", 2: "AS_PATH", 3: "NEXT_HOP", 4: "MULTI_EXIT_DISC", 5: "LOCAL_PREF",
    6: "ATOMIC_AGGREGATE", 7: "AGGREGATOR", 8: "COMMUNITIES", 9: "ORIGINATOR_ID",
    10: "CLUSTER_LIST", 14: "MP_REACH_NLRI", 15: "MP_UNREACH_NLRI",
    16: "EXTENDED_COMMUNITIES", 17: "AS4_PATH", 18: "AS4_AGGREGATOR", 32: "LARGE_COMMUNITY",
}
WELL_KNOWN_COMMUNITIES = {
    0xFFFFFF01: "NO_EXPORT", 0xFFFFFF02: "NO_ADVERTISE", 0xFFFFFF03: "NO_EXPORT_SUBCONFED",
    0xFFFFFF04: "NOPEER", 0xFFFF029A: "BLACKHOLE", 0xFFFF0000: "GRACEFUL_SHUTDOWN",
}
ORIGINS = {0: "IGP", 1: "EGP", 2: "INCOMPLETE"}


class Out:
    def __init__(self):
        self.lines = []

    def field(self, start, end, text, indent=0):
        span = "%d" % start if end - start <= 1 else "%d..%d" % (start, end)
        self.lines.append("%-9s %s%s" % (span, "  " * indent, text))


def hexs(b):
    return b.hex() if b else "(empty)"


def flags_text(f):
    names = []
    names.append("optional" if f & 0x80 else "well-known")
    names.append("transitive" if f & 0x40 else "non-transitive")
    if f & 0x20:
        names.append("partial")
    if f & 0x10:
        names.append("extended-length")
    if f & 0x0F:
        names.append("low bits 0x%x" % (f & 0x0F))
    return "0x%02x = %s" % (f, ", ".join(names))


def prefixes(o, data, base, afi, indent):
    """NLRI list (RFC 4271 §4.3): length in bits, then ceil(len/8) bytes."""
    i = 0
    width = 4 if afi == 1 else 16
    while i < len(data):
        plen = data[i]
        n = (plen + 7) // 8
        raw = data[i + 1:i + 1 + n]
        addr = raw + bytes(width - n)
        net = ipaddress.ip_network((addr, plen), strict=False) if afi == 1 else \
            ipaddress.IPv6Network((addr, plen), strict=False)
        o.field(base + i, base + i + 1 + n,
                "prefix %s  (length byte %d, address bytes %s)" % (net, plen, hexs(raw)), indent)
        i += 1 + n


def decode_capability(o, code, val, base, indent):
    name = CAPS.get(code, "unknown")
    o.field(base - 2, base + len(val),
            "capability code %d %s, length %d, value %s" % (code, name, len(val), hexs(val)), indent)
    ind = indent + 1
    if code == 1 and len(val) == 4:
        afi, res, safi = struct.unpack("!HBB", val)
        o.field(base, base + 2, "AFI %d (%s)" % (afi, AFI.get(afi, "?")), ind)
        o.field(base + 2, base + 3, "reserved %d" % res, ind)
        o.field(base + 3, base + 4, "SAFI %d (%s)" % (safi, SAFI.get(safi, "?")), ind)
    elif code == 65 and len(val) == 4:
        o.field(base, base + 4, "AS %d" % struct.unpack("!I", val)[0], ind)
    elif code == 64 and len(val) >= 2:
        (w,) = struct.unpack("!H", val[:2])
        o.field(base, base + 2, "restart flags 0x%x (R=%d, N=%d), restart time %d s"
                % (w >> 12, (w >> 15) & 1, (w >> 14) & 1, w & 0x0FFF), ind)
        for j in range(2, len(val) - 3, 4):
            afi, safi, fl = struct.unpack("!HBB", val[j:j + 4])
            o.field(base + j, base + j + 4, "AFI %d SAFI %d, flags 0x%02x (F=%d)"
                    % (afi, safi, fl, fl >> 7), ind)
    elif code == 69:
        for j in range(0, len(val) - 3, 4):
            afi, safi, sr = struct.unpack("!HBB", val[j:j + 4])
            o.field(base + j, base + j + 4, "AFI %d SAFI %d, send/receive %d (%s)" % (
                afi, safi, sr, {1: "receive", 2: "send", 3: "both"}.get(sr, "?")), ind)
    elif code == 71:
        for j in range(0, len(val) - 6, 7):
            afi, safi, fl = struct.unpack("!HBB", val[j:j + 4])
            stale = int.from_bytes(val[j + 4:j + 7], "big")
            o.field(base + j, base + j + 7, "AFI %d SAFI %d, flags 0x%02x, long-lived stale time %d s"
                    % (afi, safi, fl, stale), ind)
    elif code == 5:
        for j in range(0, len(val) - 5, 6):
            nafi, nsafi, nhafi = struct.unpack("!HHH", val[j:j + 6])
            o.field(base + j, base + j + 6, "NLRI AFI %d, NLRI SAFI %d, next hop AFI %d"
                    % (nafi, nsafi, nhafi), ind)
    elif code == 73 and len(val) >= 1:
        hl = val[0]
        host = val[1:1 + hl]
        o.field(base, base + 1, "host name length %d" % hl, ind)
        if hl:
            o.field(base + 1, base + 1 + hl, "host name %r" % host.decode("ascii", "replace"), ind)
        dpos = 1 + hl
        if dpos < len(val):
            dl = val[dpos]
            o.field(base + dpos, base + dpos + 1, "domain name length %d" % dl, ind)
            if dl:
                o.field(base + dpos + 1, base + dpos + 1 + dl, "domain name %r"
                        % val[dpos + 1:dpos + 1 + dl].decode("ascii", "replace"), ind)


def decode_open(o, m):
    ver, my_as, hold, bgp_id, plen = struct.unpack("!BHH4sB", m[19:29])
    o.field(19, 20, "version %d" % ver)
    o.field(20, 22, "my autonomous system %d" % my_as)
    o.field(22, 24, "hold time %d s" % hold)
    o.field(24, 28, "BGP identifier %s" % ipaddress.IPv4Address(bgp_id))
    o.field(28, 29, "optional parameters length %d" % plen)
    i = 29
    end = 29 + plen
    while i < end:
        ptype, pl = m[i], m[i + 1]
        o.field(i, i + 2 + pl, "optional parameter type %d (%s), length %d"
                % (ptype, "Capabilities" if ptype == 2 else "?", pl))
        if ptype == 2:
            j = i + 2
            while j < i + 2 + pl:
                code, cl = m[j], m[j + 1]
                decode_capability(o, code, m[j + 2:j + 2 + cl], j + 2, 1)
                j += 2 + cl
        i += 2 + pl


def decode_attr(o, m, i):
    flags, code = m[i], m[i + 1]
    if flags & 0x10:
        (alen,) = struct.unpack("!H", m[i + 2:i + 4])
        hl = 4
    else:
        alen = m[i + 2]
        hl = 3
    vs = i + hl
    val = m[vs:vs + alen]
    o.field(i, vs + alen, "path attribute type %d %s, length %d" % (code, ATTRS.get(code, "unknown"), alen))
    o.field(i, i + 1, "flags %s" % flags_text(flags), 1)
    o.field(i + 1, i + 2, "type code %d" % code, 1)
    o.field(i + 2, vs, "length %d" % alen, 1)
    ind = 1
    if code == 1:
        o.field(vs, vs + 1, "ORIGIN %d (%s)" % (val[0], ORIGINS.get(val[0], "?")), ind)
    elif code in (2, 17):
        j = 0
        if not val:
            o.field(vs, vs, "empty AS path (no segments)", ind)
        while j < len(val):
            st, cnt = val[j], val[j + 1]
            asns = struct.unpack("!%dI" % cnt, val[j + 2:j + 2 + 4 * cnt])
            o.field(vs + j, vs + j + 2 + 4 * cnt, "segment type %d (%s), %d ASNs (4 octets each): %s" % (
                st, {1: "AS_SET", 2: "AS_SEQUENCE"}.get(st, "?"), cnt, " ".join(map(str, asns))), ind)
            j += 2 + 4 * cnt
    elif code == 3:
        o.field(vs, vs + 4, "NEXT_HOP %s" % ipaddress.IPv4Address(val), ind)
    elif code in (4, 5):
        o.field(vs, vs + 4, "%s %d" % (ATTRS[code], struct.unpack("!I", val)[0]), ind)
    elif code == 7 and len(val) == 8:
        a, ip = struct.unpack("!I4s", val)
        o.field(vs, vs + 8, "AGGREGATOR AS %d, %s" % (a, ipaddress.IPv4Address(ip)), ind)
    elif code == 8:
        for j in range(0, len(val), 4):
            (c,) = struct.unpack("!I", val[j:j + 4])
            wk = WELL_KNOWN_COMMUNITIES.get(c)
            o.field(vs + j, vs + j + 4, "community %d:%d (0x%08x)%s"
                    % (c >> 16, c & 0xFFFF, c, " = " + wk if wk else ""), ind)
    elif code == 16:
        for j in range(0, len(val), 8):
            e = val[j:j + 8]
            t, st = e[0], e[1]
            desc = "type 0x%02x subtype 0x%02x value %s" % (t, st, e[2:].hex())
            if t in (0x00, 0x40):
                asn, local = struct.unpack("!HI", e[2:])
                kind = {0x02: "route target", 0x03: "route origin"}.get(st, "?")
                desc += " = two-octet-AS-specific %s%s %d:%d" % (
                    "" if t == 0 else "(non-transitive) ", kind, asn, local)
            o.field(vs + j, vs + j + 8, "extended community " + desc, ind)
    elif code == 32:
        for j in range(0, len(val), 12):
            g, l1, l2 = struct.unpack("!III", val[j:j + 12])
            o.field(vs + j, vs + j + 12, "large community %d:%d:%d" % (g, l1, l2), ind)
    elif code == 14:
        afi, safi, nhl = struct.unpack("!HBB", val[:4])
        o.field(vs, vs + 2, "AFI %d (%s)" % (afi, AFI.get(afi, "?")), ind)
        o.field(vs + 2, vs + 3, "SAFI %d (%s)" % (safi, SAFI.get(safi, "?")), ind)
        o.field(vs + 3, vs + 4, "next hop length %d" % nhl, ind)
        nh = val[4:4 + nhl]
        if afi == 2 and nhl in (16, 32):
            o.field(vs + 4, vs + 20, "next hop (global) %s" % ipaddress.IPv6Address(nh[:16]), ind)
            if nhl == 32:
                o.field(vs + 20, vs + 36, "next hop (link-local) %s" % ipaddress.IPv6Address(nh[16:]), ind)
        elif nhl == 4:
            o.field(vs + 4, vs + 8, "next hop %s" % ipaddress.IPv4Address(nh), ind)
        else:
            o.field(vs + 4, vs + 4 + nhl, "next hop %s" % hexs(nh), ind)
        r = vs + 4 + nhl
        o.field(r, r + 1, "reserved %d" % val[4 + nhl], ind)
        prefixes(o, val[5 + nhl:], r + 1, afi, ind)
    elif code == 15:
        afi, safi = struct.unpack("!HB", val[:3])
        o.field(vs, vs + 2, "AFI %d (%s)" % (afi, AFI.get(afi, "?")), ind)
        o.field(vs + 2, vs + 3, "SAFI %d (%s)" % (safi, SAFI.get(safi, "?")), ind)
        if len(val) == 3:
            o.field(vs + 3, vs + 3, "no withdrawn prefixes", ind)
        prefixes(o, val[3:], vs + 3, afi, ind)
    else:
        o.field(vs, vs + alen, "value %s" % hexs(val), ind)
    return vs + alen


def decode_update(o, m):
    (wl,) = struct.unpack("!H", m[19:21])
    o.field(19, 21, "withdrawn routes length %d" % wl)
    prefixes(o, m[21:21 + wl], 21, 1, 1)
    p = 21 + wl
    (al,) = struct.unpack("!H", m[p:p + 2])
    o.field(p, p + 2, "total path attribute length %d" % al)
    i = p + 2
    end = i + al
    while i < end:
        i = decode_attr(o, m, i)
    if i < len(m):
        o.field(i, len(m), "NLRI (%d bytes)" % (len(m) - i))
        prefixes(o, m[i:], i, 1, 1)
    else:
        o.field(i, i, "NLRI: none")
    if wl == 0 and al == 0:
        return "End-of-RIB marker for IPv4 unicast (RFC 4724 §2)"
    if wl == 0 and i == len(m) and al == 6 and m[p + 3] == 15:
        afi, safi = struct.unpack("!HB", m[p + 2 + 3:p + 2 + 6])
        return "End-of-RIB marker for AFI %d SAFI %d (empty MP_UNREACH_NLRI, RFC 4724 §2)" % (afi, safi)
    return None


def decode(m):
    o = Out()
    if m[:16] != b"\xff" * 16:
        o.field(0, 16, "marker NOT all ones: %s" % m[:16].hex())
    else:
        o.field(0, 16, "marker ff x 16")
    length, t = struct.unpack("!HB", m[16:19])
    o.field(16, 18, "length %d%s" % (length, "" if length == len(m) else " (file has %d bytes!)" % len(m)))
    o.field(18, 19, "type %d %s" % (t, MSG_TYPES.get(t, "?")))
    note = None
    if t == 1:
        decode_open(o, m)
    elif t == 2:
        note = decode_update(o, m)
    elif t == 3:
        o.field(19, 20, "error code %d" % m[19])
        o.field(20, 21, "error subcode %d" % m[20])
        o.field(21, len(m), "data %s" % hexs(m[21:]))
    return o.lines, note


def hexdump(m):
    rows = []
    for off in range(0, len(m), 16):
        chunk = m[off:off + 16]
        rows.append("%04x  %s" % (off, " ".join("%02x" % b for b in chunk)))
    return rows


def main():
    args = sys.argv[1:]
    markdown = False
    if args and args[0] == "--markdown":
        markdown, args = True, args[1:]
    for path in args:
        with open(path, "rb") as f:
            m = f.read()
        lines, note = decode(m)
        name = path.rsplit("/", 1)[-1]
        if markdown:
            print("### `%s` (%d bytes, %s)\n" % (name, len(m), MSG_TYPES.get(m[18], "?")))
            if note:
                print("%s.\n" % note)
            print("```text")
            print("\n".join(hexdump(m)))
            print()
            print("offset    field")
            print("\n".join(lines))
            print("```\n")
        else:
            print("== %s (%d bytes)%s" % (name, len(m), " -- " + note if note else ""))
            print("\n".join(hexdump(m)))
            print("\n".join(lines))
            print()


if __name__ == "__main__":
    main()
