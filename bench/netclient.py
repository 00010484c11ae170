#!/usr/bin/env python3
"""Network helpers for bench/bench.ts (Python 3 standard library only).

Each client prints exactly one JSON object on its last stdout line.

  serve  --port P               TCP + UDP echo server on 127.0.0.1:P (one thread, epoll);
                                prints "ready" once both sockets are bound
  tcp-rr --host H --port P      1-byte ping-pong over one TCP connection (TCP_NODELAY)
  udp-rr --host H --port P      small-datagram ping-pong on one connected UDP socket;
                                every datagram carries a sequence number; --sport
                                picks the source port
  crr    --host H --port P      connect, 1-byte echo, close, in a loop
  probe  --iface I --host H --port P --stamp F
                                startup probe run in the guest: prints "waiting",
                                waits until I is UP+RUNNING, then opens a new
                                non-blocking connection every few ms until one
                                completes a 1-byte echo; reports the time since
                                the CLOCK_MONOTONIC stamp in F
  exec   --stamp F -- ARGV...   reset signal dispositions and the signal mask,
                                write CLOCK_MONOTONIC ns to F, execvp(ARGV)
  launch [--until TEXT] -- ARGV...
                                time from just before ARGV is started to its exit,
                                or to the first TEXT on its stderr (then SIGTERM)

Clients only ever talk to the host and port they are given, and every loop is
bounded by a count and a deadline.
"""
import argparse
import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import sys
import time

now_ns = time.monotonic_ns


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def fail(msg):
    emit({"ok": False, "error": msg})
    return 1


def quantile(sorted_vals, q):
    if not sorted_vals:
        return None
    i = min(len(sorted_vals) - 1, max(0, int(q * (len(sorted_vals) - 1) + 0.5)))
    return sorted_vals[i]


# ------------------------------------------------------------------ echo server
def serve(args):
    ep = select.epoll()
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((args.bind, args.port))
    lsock.listen(4096)
    lsock.setblocking(False)
    usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    usock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    usock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    usock.bind((args.bind, args.port))
    usock.setblocking(False)
    ep.register(lsock.fileno(), select.EPOLLIN)
    ep.register(usock.fileno(), select.EPOLLIN)
    conns = {}    # fd -> socket
    backlog = {}  # fd -> bytes still to write
    lfd, ufd = lsock.fileno(), usock.fileno()
    print("ready", flush=True)

    def drop(fd):
        s = conns.pop(fd, None)
        backlog.pop(fd, None)
        if s is not None:
            try:
                ep.unregister(fd)
            except OSError:
                pass
            s.close()

    while True:
        for fd, ev in ep.poll(5.0):
            if fd == lfd:
                while True:
                    try:
                        c, _ = lsock.accept()
                    except OSError:
                        break
                    c.setblocking(False)
                    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    conns[c.fileno()] = c
                    ep.register(c.fileno(), select.EPOLLIN)
            elif fd == ufd:
                for _ in range(64):
                    try:
                        data, peer = usock.recvfrom(65536)
                    except OSError:
                        break
                    try:
                        usock.sendto(data, peer)
                    except OSError:
                        pass
            else:
                c = conns.get(fd)
                if c is None:
                    continue
                if fd in backlog:
                    if not ev & (select.EPOLLOUT | select.EPOLLERR | select.EPOLLHUP):
                        continue
                    data = backlog.pop(fd)
                else:
                    try:
                        data = c.recv(262144)
                    except BlockingIOError:
                        continue
                    except OSError:
                        drop(fd)
                        continue
                    if not data:
                        drop(fd)
                        continue
                try:
                    n = c.send(data)
                except BlockingIOError:
                    n = 0
                except OSError:
                    drop(fd)
                    continue
                if n < len(data):
                    backlog[fd] = data[n:]
                    ep.modify(fd, select.EPOLLOUT)
                else:
                    ep.modify(fd, select.EPOLLIN)


# ---------------------------------------------------------------------- clients
def read_n(sock, n):
    got = b""
    while len(got) < n:
        part = sock.recv(n - len(got))
        if not part:
            raise ConnectionError("peer closed the connection")
        got += part
    return got


def tcp_rr(args):
    sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"r" * args.size
    send, recv, size = sock.send, sock.recv, args.size
    for _ in range(args.warmup):
        send(msg)
        read_n(sock, size)
    rts = []
    start = now_ns()
    for _ in range(args.count):
        t = now_ns()
        send(msg)
        got = len(recv(size))
        if got != size:
            if got == 0:
                raise ConnectionError("peer closed the connection")
            read_n(sock, size - got)
        rts.append(now_ns() - t)
    total = now_ns() - start
    sock.close()
    rts.sort()
    emit({"ok": True, "count": args.count, "us_per_rt": total / args.count / 1e3,
          "p50_us": quantile(rts, 0.5) / 1e3, "p99_us": quantile(rts, 0.99) / 1e3})
    return 0


def udp_rr(args):
    if args.size < 4:
        return fail("size must be at least 4 (sequence number)")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if args.sport:
        sock.bind(("0.0.0.0", args.sport))
    sock.connect((args.host, args.port))
    pad = b"q" * (args.size - 4)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    tmo_ms = int(args.timeout * 1000)
    end_by = time.monotonic() + args.deadline

    def roundtrip(seq):
        t = now_ns()
        sock.send(struct.pack("!I", seq) + pad)
        limit = t + tmo_ms * 1000000
        while True:
            left = limit - now_ns()
            if left <= 0:
                return None
            if not poller.poll(-(-left // 1000000)):  # ms, rounded up
                continue
            try:
                data = sock.recv(65536)
            except OSError:  # ICMP port unreachable and the like
                return None
            if len(data) == args.size and struct.unpack("!I", data[:4])[0] == seq:
                return now_ns() - t
            # a late answer to an earlier datagram: keep waiting for ours

    seq, answered = 0, 0
    for _ in range(args.warmup):
        seq += 1
        answered += roundtrip(seq) is not None
        if seq == 10 and not answered:  # a dead path: do not sit out count x timeout
            break
    if args.warmup and not answered:
        return fail("none of the first %d datagrams came back" % seq)
    rts, lost = [], 0
    for _ in range(args.count):
        if time.monotonic() > end_by:
            break
        seq += 1
        r = roundtrip(seq)
        if r is None:
            lost += 1
        else:
            rts.append(r)
    sent = len(rts) + lost
    if not rts:
        return fail("no datagram came back (%d sent)" % sent)
    mean = sum(rts) / len(rts)
    rts.sort()
    emit({"ok": True, "sent": sent, "lost": lost, "loss_pct": 100.0 * lost / sent,
          "us_per_rt": mean / 1e3, "p50_us": quantile(rts, 0.5) / 1e3,
          "p99_us": quantile(rts, 0.99) / 1e3})
    return 0


def crr(args):
    def one():
        s = socket.create_connection((args.host, args.port), timeout=args.timeout)
        try:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.send(b"c")
            if read_n(s, 1) != b"c":
                raise ConnectionError("wrong echo")
        finally:
            s.close()

    end_by = time.monotonic() + args.deadline
    errors, last_error = 0, None
    for _ in range(args.warmup):
        try:
            one()
        except OSError as e:
            errors, last_error = errors + 1, str(e)
    done = 0
    start = now_ns()
    while done < args.count and time.monotonic() < end_by and errors <= args.max_errors:
        try:
            one()
            done += 1
        except OSError as e:
            errors, last_error = errors + 1, str(e)
    secs = (now_ns() - start) / 1e9
    if done == 0:
        return fail("no connection completed: %s" % last_error)
    emit({"ok": errors == 0 or done == args.count, "done": done, "errors": errors,
          "last_error": last_error, "seconds": secs, "conn_per_s": done / secs})
    return 0


# ------------------------------------------------------------------------ probe
SIOCGIFFLAGS = 0x8913
UP_RUNNING = 0x1 | 0x40


def link_ready(name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        req = struct.pack("16sH22x", name.encode(), 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        return flags & UP_RUNNING == UP_RUNNING
    except OSError:  # no such device (yet)
        return False
    finally:
        s.close()


def probe(args):
    print("waiting", flush=True)  # bench.ts starts the stack when it reads this
    give_up = now_ns() + int(args.deadline * 1e9)
    while not link_ready(args.iface):
        if now_ns() > give_up:
            return fail("%s never came up with carrier" % args.iface)
        time.sleep(0.0005)
    t_link = now_ns()
    ep = select.epoll()
    inflight = {}  # fd -> (socket, started_ns)
    next_at, tries, last_error = 0, 0, None
    step = int(args.interval * 1e6)
    while now_ns() < give_up:
        t = now_ns()
        if t >= next_at and len(inflight) < 32:
            next_at = t + step
            tries += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex((args.host, args.port))
            if rc in (0, errno.EINPROGRESS):
                inflight[s.fileno()] = (s, t)
                ep.register(s.fileno(), select.EPOLLOUT)
            else:
                last_error = os.strerror(rc)
                s.close()
        for fd, (s, started) in list(inflight.items()):
            if t - started > 1e9:  # a SYN lost to a stack not yet reading: retry anew
                ep.unregister(fd)
                s.close()
                del inflight[fd]
        wait = max(0.0, min(args.interval / 1000.0, (next_at - now_ns()) / 1e9))
        for fd, _ in ep.poll(wait):
            s, _ = inflight.pop(fd)
            ep.unregister(fd)
            rc = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if rc:
                last_error = os.strerror(rc)
                s.close()
                continue
            try:
                s.setblocking(True)
                s.settimeout(2.0)
                s.send(b"s")
                ok = read_n(s, 1) == b"s"
            except OSError as e:
                ok, last_error = False, str(e)
            t_echo = now_ns()
            s.close()
            if not ok:
                continue
            for other, _ in inflight.values():
                other.close()
            res = {"ok": True, "tries": tries}
            if args.stamp:
                with open(args.stamp) as f:
                    t0 = int(f.read())
                res["link_ms"] = (t_link - t0) / 1e6
                res["startup_ms"] = (t_echo - t0) / 1e6
            emit(res)
            return 0
    return fail("no echo from %s:%d before the deadline (last error: %s)"
                % (args.host, args.port, last_error))


# ------------------------------------------------------------------------- exec
def do_exec(args):
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        return fail("exec: no command")
    # Python ignores SIGPIPE/SIGXFSZ, and our parent (Bun) may have passed on
    # ignored signals too; an ignored signal stays ignored across execve.
    # pasta even refuses to start with SIGPIPE ignored.
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGQUIT,
                signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    with open(args.stamp, "w") as f:
        f.write(str(now_ns()))
    os.execvp(argv[0], argv)


def launch(args):
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    need = args.until.encode() if args.until else None
    deadline = time.monotonic() + args.deadline
    t0 = now_ns()
    # restore_signals: SIGPIPE and SIGXFSZ back to their defaults, as a shell would
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE if need else subprocess.DEVNULL)
    if need is None:
        # A blocking wait: Popen.wait(timeout) polls with doubling sleeps,
        # which rounds the times up to 1, 2, 4, 8, 16... ms.
        killer = threading.Timer(args.deadline, p.kill)
        killer.start()
        code = p.wait()
        ms = (now_ns() - t0) / 1e6
        killer.cancel()
        if ms >= args.deadline * 1000:
            return fail("did not exit within %.0f s" % args.deadline)
        return emit({"ok": True, "ms": ms, "code": code})
    seen, ms = b"", None
    fd = p.stderr.fileno()
    while ms is None and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        seen += chunk
        if need in seen:
            ms = (now_ns() - t0) / 1e6
    p.terminate()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if ms is None:
        return fail("%r not seen; stderr: %r" % (args.until, seen[-300:].decode(errors="replace")))
    return emit({"ok": True, "ms": ms})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    for name, count, warmup in (("tcp-rr", 2000, 200), ("udp-rr", 2000, 50), ("crr", 500, 20)):
        p = sub.add_parser(name)
        p.add_argument("--host", required=True)
        p.add_argument("--port", type=int, required=True)
        p.add_argument("--count", type=int, default=count)
        p.add_argument("--warmup", type=int, default=warmup)
        p.add_argument("--timeout", type=float, default=0.5 if name == "udp-rr" else 5.0)
        p.add_argument("--deadline", type=float, default=60.0)
        p.add_argument("--size", type=int, default=8 if name == "udp-rr" else 1)
        p.add_argument("--max-errors", type=int, default=10)
        if name == "udp-rr":
            p.add_argument("--sport", type=int, default=0, help="source port (0: any)")
    p = sub.add_parser("probe")
    p.add_argument("--iface", required=True)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--stamp")
    p.add_argument("--interval", type=float, default=5.0, help="ms between connection attempts")
    p.add_argument("--deadline", type=float, default=20.0)
    p = sub.add_parser("exec")
    p.add_argument("--stamp", required=True)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p = sub.add_parser("launch")
    p.add_argument("--until")
    p.add_argument("--deadline", type=float, default=20.0)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    fn = {"serve": serve, "tcp-rr": tcp_rr, "udp-rr": udp_rr, "crr": crr,
          "probe": probe, "exec": do_exec, "launch": launch}[args.cmd]
    try:
        return fn(args) or 0
    except (OSError, ConnectionError) as e:
        return fail("%s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    sys.exit(main())
