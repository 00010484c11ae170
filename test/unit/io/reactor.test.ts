// The reactor and the host sockets on it, against the real kernel on
// loopback: readiness arrives by SIGIO (nothing here polls), a dial learns
// its outcome, bytes and EOF cross, and datagrams keep their boundaries
// and senders. A handler that throws is confined to its own flow.
import { afterAll, describe, expect, test } from "bun:test";
import { SockAddr } from "../../../ffi/net.ts";
import { EAGAIN } from "../../../ffi/libc.ts";
import { EPOLLIN, Reactor } from "../../../src/io/reactor.ts";
import { TcpListener, type TcpListenerOwner } from "../../../src/io/tcp-listener.ts";
import { TcpSocket, type TcpSocketOwner } from "../../../src/io/tcp-socket.ts";
import { UdpSocket, datagramBuffer, hardError, type UdpSocketOwner } from "../../../src/io/udp-socket.ts";
import { DialError } from "../../../src/io/dial-error.ts";
import { sockAddrText } from "../../../src/io/addr.ts";
import { eventFd, eventFdSignal, readFd } from "../../../ffi/sys.ts";
import { Stats } from "../../../src/stack/stats.ts";
import { waitUntil } from "../../support/rig.ts";

const LOOP4 = new Uint8Array([127, 0, 0, 1]);
const LOOP6 = new Uint8Array(16);
LOOP6[15] = 1;

const reactor = new Reactor();
reactor.start();
afterAll(() => reactor.stop());
/** Faults the reactor confined, as main counts them; every test but the fault tests expects none. */
const faults = new Stats();
const faultErrors: unknown[] = [];
faults.onFault = (_where, e) => faultErrors.push(e);
reactor.setFaultSink(faults);

/** Resolves when `cond` holds; the event loop runs meanwhile, so SIGIO is what drives progress. */
const until = (cond: () => boolean): Promise<boolean> => waitUntil("SIGIO-driven progress", cond, 3000, 2);

/** Records what a TCP socket's owner is told, and reads everything it can. */
class Recorder implements TcpSocketOwner {
  connected: number | null = null;
  readonly got: number[] = [];
  eof = false;
  error = 0;
  private readonly buf = new Uint8Array(new ArrayBuffer(65536));

  tcpConnected(_s: TcpSocket, err: number): void {
    this.connected = err;
  }

  tcpReadable(s: TcpSocket): void {
    while (s.readable) {
      const n = s.read(this.buf, 0, this.buf.length);
      if (n > 0) this.got.push(...this.buf.subarray(0, n));
      else if (n === 0) {
        this.eof = true;
        return;
      } else if (n !== -EAGAIN) {
        this.error = -n;
        return;
      }
    }
  }

  tcpWritable(): void {}

  faulted = false;
  tcpFault(): void {
    this.faulted = true;
  }
}

class Acceptor implements TcpListenerOwner {
  readonly accepted: { sock: TcpSocket; rec: Recorder; peer: string }[] = [];
  tcpAccepted(fd: number, peer: SockAddr): void {
    const rec = new Recorder();
    const sock = TcpSocket.adopt(reactor, fd, rec);
    if (sock !== null) this.accepted.push({ sock, rec, peer: sockAddrText(peer) });
  }
  tcpAcceptFailed(): void {}
}

describe("TCP on the reactor", () => {
  for (const [family, ip] of [["IPv4", LOOP4], ["IPv6", LOOP6]] as const) {
    test(`${family}: dial, accept, data both ways, half-close`, async () => {
      const acceptor = new Acceptor();
      const l = TcpListener.listen(reactor, new SockAddr().set(ip, 0), acceptor);
      if (l instanceof DialError) throw new Error(l.text);
      const client = new Recorder();
      const c = TcpSocket.dial(reactor, ip, l.port, null, client);
      if (c instanceof DialError) throw new Error(c.text);
      await until(() => client.connected !== null && acceptor.accepted.length === 1);
      expect(client.connected).toBe(0);
      const server = acceptor.accepted[0]!;
      // The accepted peer is the client's own address, from accept() itself.
      expect(server.peer).toBe(c.localText());
      expect(server.peer.startsWith(family === "IPv4" ? "127.0.0.1:" : "[::1]:")).toBe(true);
      const msg = Uint8Array.from({ length: 100_000 }, (_, i) => i & 0xff);
      let off = 0;
      while (off < msg.length) {
        const n = c.write(msg, off, msg.length - off);
        expect(n).toBeGreaterThanOrEqual(0);
        off += n;
        if (n === 0) await until(() => c.writable);
      }
      c.shutdownWrite();
      await until(() => server.rec.eof);
      expect(server.rec.got.length).toBe(msg.length);
      expect(server.rec.got.every((b, i) => b === (i & 0xff))).toBe(true);
      const reply = new TextEncoder().encode("bye");
      expect(server.sock.write(reply, 0, reply.length)).toBe(3);
      server.sock.close();
      await until(() => client.eof);
      expect(new TextDecoder().decode(Uint8Array.from(client.got))).toBe("bye");
      c.close();
      l.close();
    });
  }

  test("a dial to a closed port learns ECONNREFUSED", async () => {
    // A port that was just listening and is closed now.
    const l = TcpListener.listen(reactor, new SockAddr().set(LOOP4, 0), new Acceptor());
    if (l instanceof DialError) throw new Error(l.text);
    const port = l.port;
    l.close();
    const rec = new Recorder();
    const c = TcpSocket.dial(reactor, LOOP4, port, null, rec);
    if (c instanceof DialError) throw new Error(c.text);
    await until(() => rec.connected !== null);
    expect(rec.connected).toBe(111);
    c.close();
  });

  test("a source address we do not have fails at once, naming bind", () => {
    const c = TcpSocket.dial(reactor, LOOP4, 9, new Uint8Array([192, 0, 2, 123]), new Recorder());
    expect(c).toBeInstanceOf(DialError);
    expect((c as DialError).text).toBe("bind: cannot assign requested address");
  });

  test("a reset reaches the peer as ECONNRESET", async () => {
    const acceptor = new Acceptor();
    const l = TcpListener.listen(reactor, new SockAddr().set(LOOP4, 0), acceptor);
    if (l instanceof DialError) throw new Error(l.text);
    const client = new Recorder();
    const c = TcpSocket.dial(reactor, LOOP4, l.port, null, client);
    if (c instanceof DialError) throw new Error(c.text);
    await until(() => acceptor.accepted.length === 1 && client.connected === 0);
    acceptor.accepted[0]!.sock.reset();
    await until(() => client.error !== 0 || client.eof);
    expect(client.error).toBe(104);
    c.close();
    l.close();
  });
});

describe("the look", () => {
  test("a flood of ready fds is handled in turns of a few ms: timers run in between, nothing is lost", async () => {
    const N = 600;
    const fds: number[] = [];
    const buf = new Uint8Array(new ArrayBuffer(8));
    let handled = 0;
    let handledWhenTimerRan = -1;
    const slow = {
      onIo(): void {
        const end = performance.now() + 0.05; // 50 us of work per event: 30 ms in all, several batches of epoll events
        while (performance.now() < end);
        handled++;
      },
    };
    try {
      for (let i = 0; i < N; i++) {
        const fd = eventFd();
        fds.push(fd);
        eventFdSignal(fd); // readable before it is watched: the look after add() finds it
      }
      setTimeout(() => (handledWhenTimerRan = handled), 0);
      for (const fd of fds) expect(reactor.add(fd, EPOLLIN, slow)).toBe(0);
      await until(() => handled === N);
      // The timer, due at once, did not wait for the whole flood.
      expect(handledWhenTimerRan).toBeGreaterThanOrEqual(0);
      expect(handledWhenTimerRan).toBeLessThan(N);
      expect(handled).toBe(N);
    } finally {
      for (const fd of fds) {
        readFd(fd, buf, 0, 8);
        reactor.close(fd);
      }
    }
  });
});

describe("UDP on the reactor", () => {
  test("unconnected and bound sockets: boundaries, senders and replies", async () => {
    const seen: { text: string; from: string }[] = [];
    const from = new SockAddr();
    let server: UdpSocket | null = null;
    const serverOwner: UdpSocketOwner = {
      udpReadable(s) {
        for (;;) {
          const n = s.recvFrom(datagramBuffer, 0, datagramBuffer.length, from);
          if (n < 0) return;
          seen.push({ text: new TextDecoder().decode(datagramBuffer.subarray(0, n)), from: sockAddrText(from) });
          s.sendTo(datagramBuffer, 0, n, from); // echo
        }
      },
    };
    const bound = UdpSocket.bound(reactor, new SockAddr().set(LOOP6, 0), serverOwner);
    if (bound instanceof DialError) throw new Error(bound.text);
    server = bound;
    const port = server.localPort();
    const replies: string[] = [];
    const replyFrom = new SockAddr();
    const clientOwner: UdpSocketOwner = {
      udpReadable(s) {
        for (;;) {
          const n = s.recvFrom(datagramBuffer, 0, datagramBuffer.length, replyFrom);
          if (n < 0) return;
          replies.push(new TextDecoder().decode(datagramBuffer.subarray(0, n)));
        }
      },
    };
    const c = UdpSocket.unconnected(reactor, 6, null, clientOwner);
    if (c instanceof DialError) throw new Error(c.text);
    const to = new SockAddr().set(LOOP6, port);
    for (const w of ["ala", "ma", "kota"]) {
      const b = new TextEncoder().encode(w);
      expect(c.sendTo(b, 0, b.length, to)).toBe(b.length);
    }
    await until(() => replies.length === 3);
    expect(replies).toEqual(["ala", "ma", "kota"]);
    expect(sockAddrText(replyFrom)).toBe(`[::1]:${port}`);
    expect(new Set(seen.map((s) => s.from))).toEqual(new Set([`[::1]:${c.localPort()}`]));
    c.close();
    server.close();
  });

  test("an IPv6 wildcard listener takes IPv4 clients, seen as IPv4", async () => {
    const from = new SockAddr();
    const seen: string[] = [];
    const l = UdpSocket.bound(reactor, new SockAddr().set(new Uint8Array(16), 0), {
      udpReadable(s) {
        while (s.recvFrom(datagramBuffer, 0, datagramBuffer.length, from) >= 0) seen.push(sockAddrText(from));
      },
    });
    if (l instanceof DialError) throw new Error(l.text);
    const c = UdpSocket.unconnected(reactor, 4, null, { udpReadable() {} });
    if (c instanceof DialError) throw new Error(c.text);
    c.sendTo(new Uint8Array([1]), 0, 1, new SockAddr().set(LOOP4, l.localPort()));
    await until(() => seen.length === 1);
    expect(seen[0]).toBe(`127.0.0.1:${c.localPort()}`);
    c.close();
    l.close();
  });

  test("an unconnected socket to a closed port: the ICMP error (ECONNREFUSED) is queued with the destination it is about", async () => {
    let err = 0;
    let about = "";
    const to = new SockAddr();
    const probe = UdpSocket.bound(reactor, new SockAddr().set(LOOP4, 0), { udpReadable() {} });
    if (probe instanceof DialError) throw new Error(probe.text);
    const port = probe.localPort();
    probe.close();
    const c = UdpSocket.unconnected(reactor, 4, null, {
      udpReadable(s) {
        while (s.errorQueued) {
          const e = s.readError(to);
          if (e !== null && hardError(e)) [err, about] = [e.errno, sockAddrText(to)];
        }
      },
    });
    if (c instanceof DialError) throw new Error(c.text);
    c.sendTo(new Uint8Array([1]), 0, 1, new SockAddr().set(LOOP4, port));
    await until(() => err !== 0);
    expect({ err, about }).toEqual({ err: 111, about: `127.0.0.1:${port}` });
    expect(c.errorQueued).toBe(false);
    c.close();
  });

  test("an owner that stops early hears readLater() once per turn until it drains; a closed socket not at all", async () => {
    // Edge-triggered: without readLater the datagrams left behind would wait
    // for the next one to arrive. This owner reads one per call (a budget of 1).
    const got: number[] = [];
    let calls = 0;
    const owner: UdpSocketOwner = {
      udpReadable(s) {
        calls++;
        const n = s.recvFrom(datagramBuffer, 0, datagramBuffer.length, new SockAddr());
        if (n < 0) return;
        got.push(datagramBuffer[0]!);
        s.readLater();
        s.readLater(); // queued once
      },
    };
    const bound = UdpSocket.bound(reactor, new SockAddr().set(LOOP4, 0), owner);
    if (bound instanceof DialError) throw new Error(bound.text);
    const sender = UdpSocket.unconnected(reactor, 4, null, { udpReadable() {} });
    if (sender instanceof DialError) throw new Error(sender.text);
    const dst = new SockAddr().set(LOOP4, bound.localPort());
    for (let i = 1; i <= 5; i++) sender.sendTo(new Uint8Array([i]), 0, 1, dst);
    await until(() => got.length === 5);
    expect(got).toEqual([1, 2, 3, 4, 5]);
    // The fifth read queued one more call, which found EAGAIN: nothing left to do.
    await Bun.sleep(20);
    expect(calls).toBe(6);

    sender.sendTo(new Uint8Array([6]), 0, 1, dst);
    await until(() => got.length === 6);
    bound.close(); // with a readLater pending
    const before = calls;
    await Bun.sleep(20);
    expect(calls).toBe(before);
    sender.close();
  });
});

describe("a handler that throws", () => {
  const buf8 = new Uint8Array(new ArrayBuffer(8));

  test("is confined to its fd: counted, its onFault closes it, other fds and later events are still served", async () => {
    const before = faults.faultCount("io-handler");
    const bad = eventFd();
    const good = eventFd();
    let badClosed = false;
    let goodEvents = 0;
    const thrower = {
      onIo(): void {
        throw new Error("bug in a handler");
      },
      onFault(): void {
        badClosed = true;
        reactor.close(bad);
      },
    };
    const counter = {
      onIo(): void {
        goodEvents++;
        readFd(good, buf8, 0, 8);
      },
    };
    expect(reactor.add(bad, EPOLLIN, thrower)).toBe(0);
    expect(reactor.add(good, EPOLLIN, counter)).toBe(0);
    eventFdSignal(bad);
    eventFdSignal(good);
    await until(() => badClosed && goodEvents === 1);
    expect(faults.faultCount("io-handler")).toBe(before + 1);
    expect((faultErrors.at(-1) as Error).message).toBe("bug in a handler");
    // Later looks are as before. (An eventfd raises no SIGIO: adding one
    // that is already readable is what makes the reactor look.)
    const later = eventFd();
    eventFdSignal(later);
    let laterEvents = 0;
    expect(reactor.add(later, EPOLLIN, { onIo: () => laterEvents++ })).toBe(0);
    await until(() => laterEvents === 1);
    reactor.close(good);
    reactor.close(later);
  });

  test("without onFault (or when it throws too) the handler is no longer called", async () => {
    const before = faults.faultCount("io-handler");
    const fd = eventFd();
    let calls = 0;
    const h = {
      onIo(): void {
        calls++;
        throw new Error("bug");
      },
    };
    expect(reactor.add(fd, EPOLLIN, h)).toBe(0);
    eventFdSignal(fd);
    await until(() => calls === 1);
    // A new edge on it, then a look (made by adding a ready fd): not called.
    readFd(fd, buf8, 0, 8);
    eventFdSignal(fd);
    const other = eventFd();
    eventFdSignal(other);
    let otherEvents = 0;
    expect(reactor.add(other, EPOLLIN, { onIo: () => otherEvents++ })).toBe(0);
    await until(() => otherEvents === 1);
    expect(calls).toBe(1);
    expect(faults.faultCount("io-handler")).toBe(before + 1);
    reactor.close(fd);
    reactor.close(other);
  });

  test("a TCP socket whose owner throws is reset (the peer sees ECONNRESET), the owner told; the listener serves the next client", async () => {
    const before = faults.faultCount("io-handler");
    class Thrower extends Recorder {
      override tcpReadable(): void {
        throw new Error("bug in tcpReadable");
      }
    }
    const owners: Recorder[] = [];
    const l = TcpListener.listen(reactor, new SockAddr().set(LOOP4, 0), {
      tcpAccepted(fd: number): void {
        const rec = owners.length === 0 ? new Thrower() : new Recorder();
        owners.push(rec);
        TcpSocket.adopt(reactor, fd, rec);
      },
      tcpAcceptFailed(): void {},
    });
    if (l instanceof DialError) throw new Error(l.text);
    const first = new Recorder();
    const c1 = TcpSocket.dial(reactor, LOOP4, l.port, null, first);
    if (c1 instanceof DialError) throw new Error(c1.text);
    await until(() => first.connected === 0 && owners.length === 1);
    const hello = new TextEncoder().encode("hello");
    expect(c1.write(hello, 0, hello.length)).toBe(5);
    await until(() => first.error !== 0 || first.eof);
    expect(first.error).toBe(104); // ECONNRESET
    expect(owners[0]!.faulted).toBe(true);
    expect(faults.faultCount("io-handler")).toBe(before + 1);

    const second = new Recorder();
    const c2 = TcpSocket.dial(reactor, LOOP4, l.port, null, second);
    if (c2 instanceof DialError) throw new Error(c2.text);
    await until(() => owners.length === 2);
    expect(c2.write(hello, 0, hello.length)).toBe(5);
    await until(() => owners[1]!.got.length === 5);
    expect(owners[1]!.faulted).toBe(false);
    c1.close();
    c2.close();
    l.close();
  });

  test("a listener whose owner throws keeps listening and accepts the clients already waiting", async () => {
    const before = faults.faultCount("io-handler");
    const accepted: TcpSocket[] = [];
    let throws = 1;
    const l = TcpListener.listen(reactor, new SockAddr().set(LOOP4, 0), {
      tcpAccepted(fd: number): void {
        const s = TcpSocket.adopt(reactor, fd, new Recorder());
        if (s !== null) accepted.push(s);
        if (throws-- > 0) throw new Error("bug in tcpAccepted");
      },
      tcpAcceptFailed(): void {},
    });
    if (l instanceof DialError) throw new Error(l.text);
    // Both connect before the listener looks: the second waits in the backlog.
    const clients = [new Recorder(), new Recorder()];
    const socks = clients.map((r) => {
      const c = TcpSocket.dial(reactor, LOOP4, l.port, null, r);
      if (c instanceof DialError) throw new Error(c.text);
      return c;
    });
    await until(() => accepted.length === 2);
    expect(faults.faultCount("io-handler")).toBe(before + 1);
    for (const s of [...socks, ...accepted]) s.close();
    l.close();
  });
});
