#!/usr/bin/env python3
"""Independent JA3 / JA4 calculator used to produce the expected values of
the test vectors in tests/data (a second implementation, in another language,
written from the public specifications).

Usage: tls_fingerprint.py HEXFILE  -> prints ja3, ja3_hash, ja4 lines
"""
import hashlib, sys


def grease(v):
    return (v & 0x0F0F) == 0x0A0A and (v >> 8) == (v & 0xFF)


def u16s(b):
    return [int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b) - 1, 2)]


def parse(raw):
    # Handshake records up to the end of the first handshake message; what
    # follows (ChangeCipherSpec, Finished, application data) is not ours.
    hs = b""
    i = 0
    while i + 5 <= len(raw) and (len(hs) < 4 or len(hs) < 4 + int.from_bytes(hs[1:4], "big")):
        assert raw[i] == 22, "not a handshake record"
        n = int.from_bytes(raw[i + 3:i + 5], "big")
        hs += raw[i + 5:i + 5 + n]
        i += 5 + n
    assert hs[0] == 1
    body = hs[4:4 + int.from_bytes(hs[1:4], "big")]
    p = 0
    h = {"version": int.from_bytes(body[0:2], "big")}
    p = 2 + 32
    p += 1 + body[p]
    n = int.from_bytes(body[p:p + 2], "big")
    h["ciphers"] = u16s(body[p + 2:p + 2 + n])
    p += 2 + n
    p += 1 + body[p]
    h.update(exts=[], groups=[], formats=[], sigs=[], versions=[], sni=None, alpn=[])
    if p + 2 <= len(body):
        end = p + 2 + int.from_bytes(body[p:p + 2], "big")
        p += 2
        while p + 4 <= end:
            t = int.from_bytes(body[p:p + 2], "big")
            n = int.from_bytes(body[p + 2:p + 4], "big")
            d = body[p + 4:p + 4 + n]
            p += 4 + n
            h["exts"].append(t)
            if t == 0:
                h["sni"] = d[5:5 + int.from_bytes(d[3:5], "big")].decode()
            elif t == 10:
                h["groups"] = u16s(d[2:])
            elif t == 11:
                h["formats"] = list(d[1:1 + d[0]])
            elif t == 13:
                h["sigs"] = u16s(d[2:])
            elif t == 16:
                q = 2
                while q < len(d):
                    h["alpn"].append(d[q + 1:q + 1 + d[q]].decode("latin1"))
                    q += 1 + d[q]
            elif t == 43:
                h["versions"] = u16s(d[1:1 + d[0]])
    return h


def ja3(h):
    f = lambda xs: "-".join(str(x) for x in xs if not grease(x))
    return "%d,%s,%s,%s,%s" % (h["version"], f(h["ciphers"]), f(h["exts"]), f(h["groups"]),
                               "-".join(str(x) for x in h["formats"]))


def ja4(h):
    vers = [v for v in h["versions"] if not grease(v)]
    v = max(vers) if vers else h["version"]
    code = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0200: "s2", 0x0100: "s1"}.get(v, "00")
    exts = [e for e in h["exts"] if not grease(e)]
    ciphers = [c for c in h["ciphers"] if not grease(c)]
    alpn = "00"
    if h["alpn"] and h["alpn"][0]:
        a = h["alpn"][0]
        alpn = a[0] + a[-1] if a[0].isalnum() and a[-1].isalnum() else "%x%x" % (ord(a[0]) >> 4, ord(a[-1]) & 15)
    a_part = "t%s%s%02d%02d%s" % (code, "d" if 0 in exts else "i", min(len(ciphers), 99), min(len(exts), 99), alpn)
    sha = lambda s: hashlib.sha256(s.encode()).hexdigest()[:12]
    b_part = sha(",".join("%04x" % c for c in sorted(ciphers))) if ciphers else "0" * 12
    rest = sorted(e for e in exts if e not in (0, 0x10))
    text = ",".join("%04x" % e for e in rest)
    sigs = [s for s in h["sigs"] if not grease(s)]
    if sigs:
        text += "_" + ",".join("%04x" % s for s in sigs)
    c_part = sha(text) if rest else "0" * 12
    return "%s_%s_%s" % (a_part, b_part, c_part)


if __name__ == "__main__":
    raw = bytes.fromhex(open(sys.argv[1]).read().strip())
    h = parse(raw)
    s = ja3(h)
    print("ja3", s)
    print("ja3_hash", hashlib.md5(s.encode()).hexdigest())
    print("ja4", ja4(h))
    print("sni", h["sni"])
    print("alpn", ",".join(h["alpn"]))
