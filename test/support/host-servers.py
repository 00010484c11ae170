#!/usr/bin/env python3
"""Servers and clients for the core integration tests (test/integration/core).

The same script runs on both sides of the stack:

  host-servers.py serve
      Run inside the test's HostNs. Opens one dual-stack ([::], V6ONLY off)
      listener per service below, on ephemeral ports, then prints one JSON
      line {"event": "ready", "ports": {...}} and afterwards one JSON line
      per event (stdout, flushed). Services:
        http        GET  /download?size=N&seed=S  -> N bytes of gen(N, S)
                    PUT|POST /upload (Content-Length or chunked)
                                                  -> {"bytes": N, "sha256": H}
        echo        echoes until EOF, then shuts its write side and closes.
        reply       reads until EOF, then sends gen(N, "reply") where N is
                    the decimal number in the first line it got, and closes
                    (the guest half-closed first and must still get it all).
        halfclose   sends "hello\\n", shuts its write side (FIN to the
                    guest), then reads until EOF and reports what came.
        halfclose-slow  the same, but waits 0.5 s before it starts reading
                    and then reads slowly (64 KiB per ms at most), so the
                    guest's data and FIN pile up in front of it.
        lateclose   reads nothing for 0.5 s, then sends "bye\\n" and shuts its
                    write side, then reads slowly until EOF and reports
                    what came (the guest may have sent its FIN already).
        rst         reads one line, then closes with SO_LINGER 0 (RST).
        watch       reads until EOF or an error and reports which.
        udp         UDP echo, one datagram back per datagram.
      Events: {"event": "accept", "svc", "peer"} for every TCP connection;
      {"event": "closed", "svc", "peer", "bytes", "sha256", "error"} when a
      halfclose/watch/echo connection ends (error is null on EOF, else the
      errno name); {"event": "udp", "peer", "len"} per datagram.
      Commands, one JSON line each on stdin:
        {"cmd": "udp-push", "peer": P, "data": TEXT}: send TEXT from the
        UDP service to peer P (as printed in its "udp" events); answered
        by {"event": "pushed", "peer": P}.

  host-servers.py hash SIZE SEED
      Prints the SHA-256 of gen(SIZE, SEED) (computed in-process).

  host-servers.py gen SIZE SEED
      Writes gen(SIZE, SEED) to stdout.

  host-servers.py sha256
      Prints {"bytes": N, "sha256": H} of its standard input.

  host-servers.py client CMD ...
      Run inside the guest. Prints one JSON line with the result; see the
      client_* functions.

gen(size, seed): a deterministic stream made of 1 MiB blocks. The base
block is SHA-256 in counter mode over the seed; block k is the base block
with its first 8 bytes replaced by k (big-endian), so no two blocks are
equal and a reordering or a lost block changes the hash.
"""
import errno
import hashlib
import http.server
import json
import os
import select
import socket
import socketserver
import struct
import sys
import threading
import time

BLOCK = 1 << 20

_base_cache = {}


def base_block(seed):
    b = _base_cache.get(seed)
    if b is None:
        s = seed.encode()
        b = b"".join(hashlib.sha256(s + i.to_bytes(4, "big")).digest() for i in range(BLOCK // 32))
        _base_cache[seed] = b
    return b


def gen(size, seed):
    """Yields gen(size, seed) as memoryviews of at most 1 MiB."""
    base = bytearray(base_block(seed))
    view = memoryview(base)
    k = 0
    left = size
    while left > 0:
        struct.pack_into(">Q", base, 0, k)
        n = min(left, BLOCK)
        yield view[:n]
        left -= n
        k += 1


def gen_hash(size, seed):
    h = hashlib.sha256()
    for chunk in gen(size, seed):
        h.update(chunk)
    return h.hexdigest()


_out_lock = threading.Lock()


def emit(obj):
    line = json.dumps(obj) + "\n"
    with _out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def errname(e):
    if isinstance(e, OSError) and e.errno is not None:
        return errno.errorcode.get(e.errno, str(e.errno))
    if isinstance(e, socket.timeout):
        return "TIMEOUT"
    return type(e).__name__


def peer_text(addr):
    host, port = addr[0], addr[1]
    if host.startswith("::ffff:"):
        host = host[7:]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def dual_stack_socket(kind):
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    if kind == socket.SOCK_STREAM:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", 0))
    return s


def read_all(conn, throttle=0.0):
    """Reads until EOF (with `throttle`: 64 KiB at a time, sleeping that
    long after each read). Returns (bytes, sha256, error name or None)."""
    h = hashlib.sha256()
    total = 0
    err = None
    size = 1 << 16 if throttle else 1 << 18
    try:
        while True:
            d = conn.recv(size)
            if not d:
                break
            h.update(d)
            total += len(d)
            if throttle:
                time.sleep(throttle)
    except OSError as e:
        err = errname(e)
    return total, h.hexdigest(), err


# --- TCP services: handler(conn, peer) runs in its own thread ---


def svc_echo(conn, peer):
    total = 0
    err = None
    try:
        while True:
            d = conn.recv(1 << 18)
            if not d:
                break
            total += len(d)
            conn.sendall(d)
        conn.shutdown(socket.SHUT_WR)
    except OSError as e:
        err = errname(e)
    emit({"event": "closed", "svc": "echo", "peer": peer, "bytes": total, "sha256": None, "error": err})


def svc_reply(conn, peer):
    h = hashlib.sha256()
    buf = b""
    total = 0
    err = None
    try:
        while True:
            d = conn.recv(1 << 18)
            if not d:
                break
            if total < 64:
                buf += d[:64]
            total += len(d)
            h.update(d)
        n = int(buf.split(b"\n", 1)[0])
        for chunk in gen(n, "reply"):
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)
    except (OSError, ValueError) as e:
        err = errname(e)
    emit({"event": "closed", "svc": "reply", "peer": peer, "bytes": total, "sha256": h.hexdigest(), "error": err})


def svc_halfclose(conn, peer, name="halfclose", delay=0.0, throttle=0.0):
    err = None
    try:
        conn.sendall(b"hello\n")
        conn.shutdown(socket.SHUT_WR)
    except OSError as e:
        err = errname(e)
    if delay:
        time.sleep(delay)
    total, digest, rerr = read_all(conn, throttle)
    emit({"event": "closed", "svc": name, "peer": peer, "bytes": total, "sha256": digest, "error": err or rerr})


def svc_halfclose_slow(conn, peer):
    svc_halfclose(conn, peer, "halfclose-slow", 0.5, 0.001)


def svc_lateclose(conn, peer):
    err = None
    time.sleep(0.5)
    try:
        conn.sendall(b"bye\n")
        conn.shutdown(socket.SHUT_WR)
    except OSError as e:
        err = errname(e)
    total, digest, rerr = read_all(conn, 0.001)
    emit({"event": "closed", "svc": "lateclose", "peer": peer, "bytes": total, "sha256": digest, "error": err or rerr})


def svc_rst(conn, peer):
    f = conn.makefile("rb")
    try:
        f.readline()
    except OSError:
        pass
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    emit({"event": "closed", "svc": "rst", "peer": peer, "bytes": 0, "sha256": None, "error": None})


def svc_watch(conn, peer):
    total, digest, err = read_all(conn)
    emit({"event": "closed", "svc": "watch", "peer": peer, "bytes": total, "sha256": digest, "error": err})


TCP_SERVICES = {
    "echo": svc_echo,
    "reply": svc_reply,
    "halfclose": svc_halfclose,
    "halfclose-slow": svc_halfclose_slow,
    "lateclose": svc_lateclose,
    "rst": svc_rst,
    "watch": svc_watch,
}


def tcp_acceptor(name, lsock, handler):
    while True:
        conn, addr = lsock.accept()
        peer = peer_text(addr)
        emit({"event": "accept", "svc": name, "peer": peer})

        def run(conn=conn, peer=peer):
            try:
                handler(conn, peer)
            finally:
                conn.close()

        threading.Thread(target=run, daemon=True).start()


udp_peers = {}


def udp_echo(sock):
    while True:
        d, addr = sock.recvfrom(65536)
        peer = peer_text(addr)
        udp_peers[peer] = addr
        emit({"event": "udp", "peer": peer, "len": len(d)})
        sock.sendto(d, addr)


def commands(udp_sock):
    """Lines on stdin: {"cmd": "udp-push", "peer": P, "data": TEXT} sends
    TEXT from the UDP service to a peer it has heard from."""
    for line in sys.stdin:
        try:
            c = json.loads(line)
            if c.get("cmd") == "udp-push":
                udp_sock.sendto(c["data"].encode(), udp_peers[c["peer"]])
                emit({"event": "pushed", "peer": c["peer"]})
        except Exception as e:
            emit({"event": "command-error", "error": repr(e)})


# --- HTTP ---


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        from urllib.parse import parse_qs, urlsplit

        u = urlsplit(self.path)
        if u.path != "/download":
            self.send_error(404)
            return
        q = parse_qs(u.query)
        size = int(q.get("size", ["0"])[0])
        seed = q.get("seed", ["seed"])[0]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        for chunk in gen(size, seed):
            self.wfile.write(chunk)
        emit({"event": "http", "method": "GET", "bytes": size})

    def _body_chunks(self):
        te = self.headers.get("Transfer-Encoding", "").lower()
        rf = self.rfile
        if "chunked" in te:
            while True:
                line = rf.readline(1024)
                n = int(line.split(b";", 1)[0].strip(), 16)
                if n == 0:
                    while rf.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                while n > 0:
                    d = rf.read1(n) if hasattr(rf, "read1") else rf.read(n)
                    if not d:
                        raise ConnectionError("EOF in chunk")
                    n -= len(d)
                    yield d
                rf.readline(1024)
        else:
            n = int(self.headers.get("Content-Length", "0"))
            while n > 0:
                d = rf.read1(min(n, BLOCK))
                if not d:
                    raise ConnectionError("EOF in body")
                n -= len(d)
                yield d

    def do_PUT(self):
        h = hashlib.sha256()
        total = 0
        for d in self._body_chunks():
            h.update(d)
            total += len(d)
        body = json.dumps({"bytes": total, "sha256": h.hexdigest()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        emit({"event": "http", "method": self.command, "bytes": total})

    do_POST = do_PUT


class DualStackHTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def serve():
    ports = {}
    for name, handler in TCP_SERVICES.items():
        s = dual_stack_socket(socket.SOCK_STREAM)
        s.listen(1024)
        ports[name] = s.getsockname()[1]
        threading.Thread(target=tcp_acceptor, args=(name, s, handler), daemon=True).start()
    u = dual_stack_socket(socket.SOCK_DGRAM)
    u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    ports["udp"] = u.getsockname()[1]
    threading.Thread(target=udp_echo, args=(u,), daemon=True).start()
    httpd = DualStackHTTPServer(("::", 0), Handler)
    ports["http"] = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    emit({"event": "ready", "ports": ports})
    # Commands until the test closes our stdin (or kills us).
    try:
        commands(u)
    except Exception:
        pass
    os._exit(0)


# --- guest-side clients ---


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def connect(host, port, timeout=10.0):
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def client_connect(host, port):
    """connect() once: {"ok", "error", "ms"}."""
    t0 = time.monotonic()
    try:
        s = connect(host, int(port), timeout=10.0)
        ok, err = True, None
        s.close()
    except OSError as e:
        ok, err = False, errname(e)
    return {"ok": ok, "error": err, "ms": (time.monotonic() - t0) * 1000}


def client_concurrent(host, port, count, size):
    """`count` connections open at once, each sending its own `size` bytes
    and checking that exactly those bytes come back."""
    count, size, port = int(count), int(size), int(port)
    results = [None] * count
    barrier = threading.Barrier(count, timeout=60)

    def one(i):
        try:
            s = connect(host, port, timeout=60.0)
            # Everyone is connected before anyone sends: all flows are live at once.
            barrier.wait()
            payload = (f"conn-{i:05d}:".encode() + os.urandom(size))[:size]
            got = bytearray()

            def reader():
                while len(got) < size:
                    d = s.recv(65536)
                    if not d:
                        break
                    got.extend(d)

            t = threading.Thread(target=reader)
            t.start()
            s.sendall(payload)
            t.join(60)
            s.shutdown(socket.SHUT_WR)
            tail = s.recv(1)
            s.close()
            if bytes(got) != payload:
                results[i] = f"mismatch: sent {size}, got {len(got)}"
            elif tail != b"":
                results[i] = "extra data after echo"
            else:
                results[i] = "ok"
        except Exception as e:
            results[i] = f"error: {errname(e)} {e}"
            try:
                barrier.abort()
            except Exception:
                pass

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = sum(1 for r in results if r == "ok")
    bad = [r for r in results if r != "ok"][:5]
    return {"ok": ok, "failed": count - ok, "examples": bad, "ms": (time.monotonic() - t0) * 1000}


def client_shutwr(host, port, send, want):
    """Sends `send` bytes (first line: `want`), shuts its write side, then
    reads the reply until EOF."""
    send, want = int(send), int(want)
    s = connect(host, int(port), timeout=30.0)
    head = f"{want}\n".encode()
    body = head + b"x" * max(0, send - len(head))
    s.sendall(body)
    s.shutdown(socket.SHUT_WR)
    total, digest, err = read_all(s)
    s.close()
    return {"bytes": total, "sha256": digest, "error": err, "sent_sha256": hashlib.sha256(body).hexdigest()}


def client_afterfin(host, port, size):
    """Reads until the server's EOF, then sends `size` bytes, then closes."""
    size = int(size)
    s = connect(host, int(port), timeout=30.0)
    first, _, err = b"", None, None
    got = bytearray()
    while True:
        d = s.recv(4096)
        if not d:
            break
        got.extend(d)
    h = hashlib.sha256()
    sent = 0
    try:
        for chunk in gen(size, "afterfin"):
            s.sendall(chunk)
            h.update(chunk)
            sent += len(chunk)
        s.shutdown(socket.SHUT_WR)
        # Wait for the server to close its side completely.
        s.settimeout(10)
        s.recv(1)
    except OSError as e:
        err = errname(e)
    s.close()
    return {"greeting": got.decode(errors="replace"), "sent": sent, "sha256": h.hexdigest(), "error": err}


def client_rstrecv(host, port):
    """Sends a line and waits: the server answers with RST."""
    s = connect(host, int(port), timeout=10.0)
    s.sendall(b"go\n")
    t0 = time.monotonic()
    try:
        d = s.recv(4096)
        res = {"error": None, "data": len(d)}
        if not d:
            res["eof"] = True
    except OSError as e:
        res = {"error": errname(e)}
    res["ms"] = (time.monotonic() - t0) * 1000
    s.close()
    return res


def client_rstsend(host, port):
    """Sends some data, then closes with SO_LINGER 0 (RST)."""
    s = connect(host, int(port), timeout=10.0)
    s.sendall(b"some data\n")
    time.sleep(0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    return {"ok": True}


def client_connectmany(host, port, count):
    """`count` sequential connect/send/close cycles against an echo server."""
    count = int(count)
    ok = 0
    for i in range(count):
        s = connect(host, int(port))
        s.sendall(b"ping %d\n" % i)
        s.shutdown(socket.SHUT_WR)
        d = b""
        while True:
            x = s.recv(4096)
            if not x:
                break
            d += x
        s.close()
        ok += d == b"ping %d\n" % i
    return {"ok": ok}


def client_udp(host, port, sizes, timeout="5", bind_port="0"):
    """Sends one datagram per size, back to back, from one socket (bound to
    `bind_port` when not 0), then collects the replies:
    {"sent": [...], "got": [...lengths], "match": bool}.
    A size "ala" etc. sends that text instead."""
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    if int(bind_port):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::" if family_of(host) == socket.AF_INET6 else "0.0.0.0", int(bind_port)))
    s.connect((host, int(port)))
    payloads = []
    for item in sizes.split(","):
        if item.isdigit():
            n = int(item)
            p = (hashlib.sha256(item.encode()).digest() * (n // 32 + 1))[:n]
        else:
            p = item.encode()
        payloads.append(p)
    for p in payloads:
        s.send(p)
    got = []
    s.settimeout(float(timeout))
    err = None
    try:
        while len(got) < len(payloads):
            got.append(s.recv(65536))
    except OSError as e:
        err = errname(e)
    # A little longer: anything extra (duplicates, splits) shows up here.
    s.settimeout(0.3)
    try:
        while True:
            got.append(s.recv(65536))
    except OSError:
        pass
    local = s.getsockname()
    s.close()
    return {
        "sent": [len(p) for p in payloads],
        "got": [len(g) for g in got],
        "texts": [g.decode(errors="replace") if len(g) < 16 else None for g in got],
        "match": got == payloads,
        "error": err,
        "local_port": local[1],
    }


def client_udphold(host, port, bind_port, text):
    """Binds `bind_port`, sends `text` to host:port, and then prints
    {"got": TEXT} for every datagram that comes back, until its stdin
    closes (so the guest socket stays open the whole time)."""
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::" if family_of(host) == socket.AF_INET6 else "0.0.0.0", int(bind_port)))
    s.connect((host, int(port)))
    s.send(text.encode())
    print(json.dumps({"sent": text}), flush=True)
    stdin = sys.stdin.fileno()
    while True:
        r, _, _ = select.select([s, stdin], [], [])
        if s in r:
            try:
                d = s.recv(65536)
                print(json.dumps({"got": d.decode(errors="replace")}), flush=True)
            except OSError as e:
                print(json.dumps({"error": errname(e)}), flush=True)
        if stdin in r:
            if not os.read(stdin, 4096):
                break
    s.close()
    return {"closed": True}


def client_udppingpong(host, port, count):
    """`count` numbered datagrams, each sent when the previous one came back;
    a reply that takes over 1 s is a stall. Prints {"stalls": [i, ...]}."""
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.connect((host, int(port)))
    s.settimeout(1.0)
    stalls = []
    for i in range(int(count)):
        s.send(struct.pack("!I", i))
        while True:
            try:
                d = s.recv(64)
            except socket.timeout:
                stalls.append(i)
                break
            if struct.unpack("!I", d[:4])[0] == i:
                break
    local = s.getsockname()
    s.close()
    return {"stalls": stalls, "local_port": local[1]}


def client_hold(host, port):
    """Connects, prints {"port": local port}, and keeps the connection open
    until its stdin closes; then closes it and prints {"closed": true}."""
    s = connect(host, int(port))
    print(json.dumps({"port": s.getsockname()[1]}), flush=True)
    sys.stdin.read()
    s.close()
    return {"closed": True}


def client(cmd, args):
    fn = globals().get("client_" + cmd)
    if fn is None:
        raise SystemExit(f"unknown client command {cmd}")
    print(json.dumps(fn(*args)), flush=True)


def main():
    cmd = sys.argv[1]
    if cmd == "serve":
        serve()
    elif cmd == "hash":
        print(gen_hash(int(sys.argv[2]), sys.argv[3]))
    elif cmd == "gen":
        out = sys.stdout.buffer
        for chunk in gen(int(sys.argv[2]), sys.argv[3]):
            out.write(chunk)
        out.flush()
    elif cmd == "sha256":
        h = hashlib.sha256()
        n = 0
        inp = sys.stdin.buffer
        while True:
            d = inp.read1(BLOCK)
            if not d:
                break
            h.update(d)
            n += len(d)
        print(json.dumps({"bytes": n, "sha256": h.hexdigest()}))
    elif cmd == "client":
        client(sys.argv[2], sys.argv[3:])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
