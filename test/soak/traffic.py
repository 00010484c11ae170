#!/usr/bin/env python3
"""Real traffic for the soak (test/soak/soak.ts), on both sides of the stack.

    traffic.py host      inside the soak's host namespace: the servers the
                         guest talks to, and host clients of the -L forwards
    traffic.py guest     inside the guest: the servers behind -L, and the
                         guest clients (downloads, uploads, connection churn,
                         DNS-like UDP to many ports, pings)
    traffic.py probe     inside the guest, once: a fresh 8 MiB download and a
                         UDP echo, with their latency

host and guest run until their stdin closes (host starts its -L clients at
the first line it reads there). Every STATS_SECS they print one
JSON line {"stats": {KIND: [ok, failed, timed out]}, "errors": [a few
examples]} with the counts since the previous line. A timeout (no answer
in time) is counted apart from a failure (an error or wrong data): on a
machine shared with other work, a stall of the whole machine times
operations out without anything being wrong in the stack. Every loop is paced (the soak wants
steady load, not throughput) and every socket has a timeout, so nothing
piles up on our side: what grows, grows in the stack.

Downloads and uploads use the HTTP service of test/support/host-servers.py
(imported, not copied): GET /download?size=N&seed=S returns gen(N, S), and
PUT /upload answers with the SHA-256 of what it got, so both are checked
against gen_hash. Addresses and ports are the soak's fixed plan below.
"""
import hashlib
import http.client
import importlib.util
import json
import os
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time

_spec = importlib.util.spec_from_file_location("host_servers", os.path.join(os.path.dirname(__file__), "..", "support", "host-servers.py"))
hs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hs)
# The imported services print one event per request; the soak has no use for them.
hs.emit = lambda obj: None

# The plan (soak.ts passes the same numbers to the stack's flags).
HOST4, HOST6 = "192.0.2.1", "2001:db8::1"  # on the host namespace's lo, reached with -enable-host
GW4 = "10.0.2.2"
HTTP_PORT = 8000  # host: HTTP; the guest also reaches it at 10.0.2.2:R_HTTP_PORT (-R)
ECHO_PORT = 8001  # host: TCP echo (connection churn)
R_HTTP_PORT = 8080
DNS_PORTS = list(range(5300, 5332))  # host: 32 DNS-like UDP responders
R_DNS_PORT = 5353  # guest: 10.0.2.2:5353 -> host 127.0.0.1:5300 (-R udp)
L_TCP_PORT, L_UDP_PORT = 18080, 18053  # host 127.0.0.1 -> guest 10.0.2.100 (-L)
G_TCP_PORT, G_UDP_PORT = 8080, 8053  # guest: TCP echo and UDP echo behind -L

STATS_SECS = 10
DL_SIZES = [1 << 10, 16 << 10, 256 << 10, 1 << 20, 4 << 20]
UL_SIZES = [1 << 10, 64 << 10, 1 << 20, 3 << 20]


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.errors = []

    def ok(self, kind):
        with self.lock:
            self.counts.setdefault(kind, [0, 0, 0])[0] += 1

    def fail(self, kind, why, timeout=False):
        with self.lock:
            self.counts.setdefault(kind, [0, 0, 0])[2 if timeout else 1] += 1
            if len(self.errors) < 5:
                self.errors.append(f"{kind}: {why}")

    def flush(self):
        with self.lock:
            line = json.dumps({"stats": self.counts, "errors": self.errors})
            self.counts = {}
            self.errors = []
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


C = Counters()
stop = threading.Event()


class NoAnswer(Exception):
    """Nothing came back in time (a ping without replies)."""


def errtext(e):
    return f"{type(e).__name__} {e}"


def fam(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def loop(kind, pause, fn):
    """Runs fn() until the soak ends, counting outcomes, then sleeps `pause()` seconds."""
    def run():
        while not stop.is_set():
            try:
                fn()
                C.ok(kind)
            except (NoAnswer, TimeoutError) as e:
                C.fail(kind, errtext(e), timeout=True)
            except Exception as e:
                C.fail(kind, errtext(e))
            stop.wait(pause())
    threading.Thread(target=run, daemon=True).start()


_hashes = {}


def expected(size, seed):
    key = (size, seed)
    if key not in _hashes:
        _hashes[key] = hs.gen_hash(size, seed)
    return _hashes[key]


def http_download(host, port, size, seed, timeout=30):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", f"/download?size={size}&seed={seed}")
        r = c.getresponse()
        if r.status != 200:
            raise RuntimeError(f"status {r.status}")
        h = hashlib.sha256()
        n = 0
        while True:
            d = r.read(1 << 18)
            if not d:
                break
            h.update(d)
            n += len(d)
    finally:
        c.close()
    if n != size or h.hexdigest() != expected(size, seed):
        raise RuntimeError(f"download {host}:{port} size {size}: got {n} bytes, hash {'ok' if h.hexdigest() == expected(size, seed) else 'wrong'}")


def http_upload(host, port, size, seed):
    c = http.client.HTTPConnection(host, port, timeout=30)
    try:
        c.putrequest("PUT", "/upload")
        c.putheader("Content-Length", str(size))
        c.endheaders()
        for chunk in hs.gen(size, seed):
            c.send(chunk)
        r = c.getresponse()
        body = json.loads(r.read())
    finally:
        c.close()
    if body.get("bytes") != size or body.get("sha256") != expected(size, seed):
        raise RuntimeError(f"upload {host}:{port} size {size}: server got {body}")


def tcp_echo_once(host, port, payload, rst=False, timeout=10):
    s = socket.socket(fam(host), socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect((host, port))
        s.sendall(payload)
        if rst:
            # Leave with a reset instead of a FIN, half the time before the echo.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            if random.random() < 0.5:
                return
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            got += d
        if bytes(got) != payload:
            raise RuntimeError(f"echo {host}:{port}: sent {len(payload)}, got {len(got)} bytes{'' if len(got) != len(payload) else ' (different)'}")
    finally:
        s.close()


def udp_query(host, port, payload, timeout=3.0):
    """One DNS-like exchange from a fresh socket (a new source port, as a resolver does)."""
    s = socket.socket(fam(host), socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.connect((host, port))
        s.send(payload)
        d = s.recv(2048)
    finally:
        s.close()
    want = payload[:2] + bytes([payload[2] | 0x80]) + payload[3:]
    if d != want:
        raise RuntimeError(f"udp {host}:{port}: wrong reply ({len(d)} bytes)")


def dns_like_query():
    """A DNS-shaped query: id, flags, one question for a random name."""
    name = b"".join(bytes([len(p)]) + p for p in (os.urandom(4).hex().encode(), b"soak", b"test")) + b"\0"
    return struct.pack("!HHHHHH", random.getrandbits(16), 0x0100, 1, 0, 0, 0) + name + struct.pack("!HH", 1, 1)


def stats_printer():
    while not stop.wait(STATS_SECS):
        C.flush()


def wait_stdin_then_exit():
    threading.Thread(target=stats_printer, daemon=True).start()
    try:
        while sys.stdin.buffer.read(4096):
            pass
    except Exception:
        pass
    stop.set()
    C.flush()
    os._exit(0)


# --- host side ---


def dns_responder(socks):
    """Answers every datagram on any of `socks` with the same bytes, QR bit set."""
    while True:
        r, _, _ = select.select(socks, [], [])
        for s in r:
            try:
                d, addr = s.recvfrom(2048)
                if len(d) >= 3:
                    s.sendto(d[:2] + bytes([d[2] | 0x80]) + d[3:], addr)
            except OSError:
                pass


def host():
    httpd = hs.DualStackHTTPServer(("::", HTTP_PORT), hs.Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    e = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    e.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    e.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    e.bind(("::", ECHO_PORT))
    e.listen(1024)
    threading.Thread(target=hs.tcp_acceptor, args=("echo", e, hs.svc_echo), daemon=True).start()
    socks = []
    for p in DNS_PORTS:
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        u.bind(("::", p))
        socks.append(u)
    threading.Thread(target=dns_responder, args=(socks,), daemon=True).start()
    print(json.dumps({"ready": "host"}), flush=True)
    # The -L clients start on the first line on stdin: once the guest's servers are up.
    sys.stdin.buffer.readline()
    # Host clients of the -L forwards: echo connections of 1 B to 64 KiB into
    # the guest's server, some reset, and UDP echoes through -L udp.
    loop("L-tcp", lambda: random.uniform(0.1, 0.4), lambda: tcp_echo_once("127.0.0.1", L_TCP_PORT, os.urandom(random.choice([1, 100, 4096, 65536])), rst=random.random() < 0.1))
    loop("L-udp", lambda: random.uniform(0.2, 0.6), lambda: udp_echo_once("127.0.0.1", L_UDP_PORT, os.urandom(random.choice([1, 64, 512, 1400]))))
    wait_stdin_then_exit()


def udp_echo_once(host, port, payload, timeout=3.0):
    s = socket.socket(fam(host), socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.connect((host, port))
        s.send(payload)
        d = s.recv(65536)
    finally:
        s.close()
    if d != payload:
        raise RuntimeError(f"udp echo {host}:{port}: wrong reply ({len(d)} of {len(payload)} bytes)")


# --- guest side ---


def guest_servers():
    t = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    t.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("::", G_TCP_PORT))
    t.listen(1024)
    threading.Thread(target=hs.tcp_acceptor, args=("echo", t, hs.svc_echo), daemon=True).start()
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    u.bind(("::", G_UDP_PORT))

    def echo():
        while True:
            d, addr = u.recvfrom(65536)
            u.sendto(d, addr)

    threading.Thread(target=echo, daemon=True).start()


def ping(addr):
    r = subprocess.run(["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2", addr], capture_output=True, text=True, timeout=20)
    if r.returncode == 1:
        raise NoAnswer(f"ping {addr}: {r.stdout.strip().splitlines()[-2:]}")
    if r.returncode != 0:
        raise RuntimeError(f"ping {addr}: exit {r.returncode} {r.stdout.strip().splitlines()[-1:] or r.stderr.strip()}")


def guest():
    guest_servers()
    print(json.dumps({"ready": "guest"}), flush=True)
    http_targets = [(HOST4, HTTP_PORT), (HOST6, HTTP_PORT), (GW4, R_HTTP_PORT)]
    seeds = [f"soak{i}" for i in range(3)]
    # Warm the hash cache here, not inside the first timed downloads.
    for size in set(DL_SIZES + UL_SIZES):
        for seed in seeds:
            expected(size, seed)
    for _ in range(2):
        loop("download", lambda: random.uniform(0.1, 0.5), lambda: http_download(*random.choice(http_targets), random.choice(DL_SIZES), random.choice(seeds)))
    loop("upload", lambda: random.uniform(0.2, 0.8), lambda: http_upload(*random.choice(http_targets), random.choice(UL_SIZES), random.choice(seeds)))
    # Connection churn: short echo connections, one in ten closed with a reset.
    loop("churn", lambda: random.uniform(0.02, 0.1), lambda: tcp_echo_once(random.choice([HOST4, HOST6]), ECHO_PORT, os.urandom(random.randint(1, 512)), rst=random.random() < 0.1))
    # DNS-like UDP to 32 ports, each query from a new source port, and through -R udp.
    loop("udp", lambda: random.uniform(0.5, 1.5), lambda: udp_query(*random.choice([(HOST4, random.choice(DNS_PORTS)), (HOST6, random.choice(DNS_PORTS)), (GW4, R_DNS_PORT)]), dns_like_query()))
    loop("ping", lambda: random.uniform(2, 5), lambda: ping(random.choice([GW4, HOST4, HOST6, "fd00::2"])))
    wait_stdin_then_exit()


def probe():
    """A fresh 8 MiB download and one UDP echo; prints their latency."""
    out = {}
    seed = f"probe{random.getrandbits(32)}"
    expected(8 << 20, seed)  # before the clock starts
    t0 = time.monotonic()
    try:
        http_download(HOST4, HTTP_PORT, 8 << 20, seed, timeout=60)
        out["download_ms"] = round((time.monotonic() - t0) * 1000, 1)
    except Exception as e:
        out["download_error"] = errtext(e)
    t0 = time.monotonic()
    try:
        udp_query(HOST4, DNS_PORTS[0], dns_like_query(), timeout=5)
        out["udp_ms"] = round((time.monotonic() - t0) * 1000, 2)
    except Exception as e:
        out["udp_error"] = errtext(e)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    {"host": host, "guest": guest, "probe": probe}[sys.argv[1]]()
