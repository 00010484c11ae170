// -L: host listeners whose connections and datagrams are dialled into the
// guest (docs/compatibility.md, Local forwards and Client address headers).
// The guest sees the client's real address where it can (the engine sends
// from any address): the accepted peer, or the address from a PROXY (v1 or
// v2) or SPP header; loopback and other statically denied sources, and
// cross-family ones, become the gateway address instead.
//
// UDP uses one listening socket and tells clients apart by address, which
// avoids upstream's connected-socket race (docs/compatibility.md,
// Listeners); replies come from the listener's port as before.
import type { ForwardHandle, HostFwd } from "../control/api-socket.ts";
import { formatSpecAddress, formatSpecSide, type ForwardSpec } from "./forward-spec.ts";
import { endpointText, formatHostPort, ipV4Number, parseIP, type IP } from "../../wire/addr.ts";
import type { Stack } from "../../stack/stack.ts";
import type { Stats } from "../../stack/stats.ts";
import type { UdpFlow, UdpHandler } from "../../stack/udp.ts";
import { parseProxyHeader, parseSppHeader, SPP_HEADER_LEN, type ProxyAddresses } from "../../wire/proxy.ts";
import type { Logger } from "../control/log.ts";
import type { Resolver } from "../control/resolve.ts";
import type { StackClock } from "../clock.ts";
import { STATIC_DENY } from "../control/prefix.ts";
import { inGuestNetV4, type GuestNetV4 } from "../../wire/guest-net.ts";
import { SpliceErrors } from "./splice-errors.ts";
import { TcpSplice, type HostKeepalive, type SpliceOwner } from "./tcp-splice.ts";
import { EAGAIN, errnoText } from "../../../ffi/libc.ts";
import { SockAddr, localAddress, resetAndClose } from "../../../ffi/net.ts";
import { sockAddrIP, sockAddrKey, sockAddrText } from "../../io/addr.ts";
import { DialError } from "../../io/dial-error.ts";
import type { Reactor } from "../../io/reactor.ts";
import { TcpListener, type TcpListenerOwner } from "../../io/tcp-listener.ts";
import { TcpSocket, type TcpSocketOwner } from "../../io/tcp-socket.ts";
import { DATAGRAMS_PER_TURN, datagramBuffer, UdpSocket, type UdpSocketOwner } from "../../io/udp-socket.ts";

/** UDP clients per -L listener; beyond this new clients are dropped. */
const MAX_UDP_CLIENTS = 4096;

export interface Gateways {
  v4: IP;
  v6: IP;
}

/**
 * The address the guest sees a forwarded client come from
 * (docs/compatibility.md, Client address seen by the guest).
 */
export function guestSource(c: IP | null, targetFamily: 4 | 6, gw: Gateways, guestNet: GuestNetV4): IP {
  if (c === null || c.family !== targetFamily || STATIC_DENY.contains(c) || inGuestNetV4(guestNet, c)) return targetFamily === 4 ? gw.v4 : gw.v6;
  return c;
}

/** A listener could not be set up: Go's text, "listen tcp 127.0.0.1:80: bind: address already in use". */
class ListenError extends Error {}

/** The socket address to listen on: a wildcard (either family) listens on both, as Go does. */
function listenAddress(bindIp: string, port: number): { sa: SockAddr; text: string } {
  const wildcard = bindIp === "0.0.0.0" || bindIp === "::";
  const ip = parseIP(wildcard ? "::" : bindIp)!;
  return { sa: new SockAddr().set(ip.bytes, port), text: wildcard ? "::" : bindIp };
}

/** Everything -L needs from the process. */
export interface LocalForwardContext {
  stack: Stack;
  clock: StackClock;
  log: Logger;
  stats: Stats;
  gateways: Gateways;
  keepalive: HostKeepalive;
  reactor: Reactor;
  /** -max-local-clients: live clients per TCP listener (0: no cap). */
  maxClients: number;
  /** -proxy-header-timeout (ms): how long a tcppp client may take to send its header (0: no limit). */
  proxyHeaderTimeoutMs: number;
}

// ---------------------------------------------------------------------------
// TCP

/** Where a PROXY header is read: it must come whole in the first read (as upstream). */
const preambleBuf = new Uint8Array(new ArrayBuffer(4096));

/** An accepted client before its guest connection exists (PROXY header pending). */
class PendingClient implements TcpSocketOwner {
  sock!: TcpSocket;
  /** performance.now() when it was accepted (the PROXY header's clock). */
  since = 0;
  /** Handed to a splice or gone: no longer counted as pending by the forward. */
  settled = false;

  constructor(
    private readonly fwd: TcpForward,
    readonly client: IP,
    /** Go-style client address, and the local address it connected to. */
    readonly clientText: string,
    readonly listenLocal: string,
    readonly localPort: number,
  ) {}

  tcpConnected(): void {}

  tcpReadable(): void {
    this.fwd.preamble(this);
  }

  tcpWritable(): void {}

  tcpFault(): void {
    this.fwd.pendingGone(this);
  }
}

class TcpForward implements SpliceOwner, TcpListenerOwner {
  private listener: TcpListener | null = null;
  private listenText = "";
  private wildcard = false;
  /** accept() has been failing (EMFILE and the like): its line was printed once for this run. */
  private acceptFailing = false;
  private readonly local = new SockAddr();
  private readonly meta = new WeakMap<TcpSplice, { client: string; listenLocal: string; guestLocal: string; target: string }>();
  /** Accepted clients not done yet (waiting for a PROXY header, or spliced): -max-local-clients. */
  private clients = 0;
  /** tcppp clients waiting for their header, oldest first (all get the same time). */
  private readonly waiting = new Set<PendingClient>();
  private headerTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly ctx: LocalForwardContext,
    readonly spec: ForwardSpec,
    private readonly target: IP,
  ) {}

  /** Listens; returns the address for the "Local listen" line. */
  listen(bindIp: string): string {
    const { sa, text } = listenAddress(bindIp, this.spec.bind.port);
    const l = TcpListener.listen(this.ctx.reactor, sa, this);
    if (l instanceof DialError) {
      throw new ListenError(`listen tcp ${formatHostPort(bindIp, this.spec.bind.port)}: ${l.text}`);
    }
    this.listener = l;
    this.wildcard = text === "::";
    this.listenText = formatHostPort(text, l.port);
    return this.listenText;
  }

  stop(): void {
    this.listener?.close();
    if (this.headerTimer !== null) clearTimeout(this.headerTimer);
  }

  /**
   * At -max-local-clients a new client is accepted and reset at once: it
   * learns right away (ECONNRESET) instead of waiting in the kernel's
   * backlog behind clients that may hold their slots for minutes.
   */
  tcpAccepted(fd: number, peer: SockAddr): void {
    this.acceptFailing = false;
    if (this.ctx.maxClients > 0 && this.clients >= this.ctx.maxClients) {
      this.ctx.stats.limit("local-fwd-clients");
      resetAndClose(fd);
      return;
    }
    let listenLocal = this.listenText;
    let localPort = this.listener!.port;
    // A wildcard listener's connections each have their own local address.
    if (this.wildcard) {
      listenLocal = localText(fd, this.local);
      localPort = this.local.port;
    }
    const p = new PendingClient(this, sockAddrIP(peer), sockAddrText(peer), listenLocal, localPort);
    const sock = TcpSocket.adopt(this.ctx.reactor, fd, p);
    if (sock === null) return;
    p.sock = sock;
    this.clients++;
    if (this.spec.proxyProtocol) {
      this.awaitHeader(p);
      return;
    }
    try {
      this.dial(p, null, null, 0);
    } catch (e) {
      // A bug while setting up this client: confined to it, as the reactor
      // would (RST toward the client, and the guest if it got that far);
      // the listener goes on with the next one.
      this.ctx.stats.fault("local-forward", e);
      sock.onFault(e);
    }
  }

  /** A client that never reached a splice is gone (closed, reset, timed out or refused). */
  pendingGone(p: PendingClient): void {
    if (p.settled) return;
    p.settled = true;
    this.waiting.delete(p);
    this.clients--;
  }

  private awaitHeader(p: PendingClient): void {
    const limit = this.ctx.proxyHeaderTimeoutMs;
    if (limit <= 0) return;
    p.since = performance.now();
    this.waiting.add(p);
    this.headerTimer ??= setTimeout(this.expireHeaders, limit);
  }

  /** Resets the clients whose PROXY header is overdue (slowloris), and waits for the next one's turn. */
  private readonly expireHeaders = (): void => {
    this.headerTimer = null;
    const limit = this.ctx.proxyHeaderTimeoutMs;
    const now = performance.now();
    for (const p of this.waiting) {
      const left = p.since + limit - now;
      if (left > 0) {
        this.headerTimer = setTimeout(this.expireHeaders, left);
        return;
      }
      this.ctx.stats.limit("local-fwd-proxy-header");
      this.ctx.log.flow("local-fwd-error", `[!] tcp://${p.clientText}-${p.listenLocal}/${this.targetText(0)} local-fwd PP error: no PROXY header in ${limit} ms`);
      p.sock.reset();
      this.pendingGone(p);
    }
  };

  tcpAcceptFailed(errno: number): void {
    this.ctx.stats.drop("forward-accept-failed");
    // The listener retries every 100 ms: one line per run of failures, not ten a second.
    if (this.acceptFailing) return;
    this.acceptFailing = true;
    this.ctx.log.flow("local-fwd-error", `[!] tcp://${this.listenText} local-fwd accept error: ${errnoText(errno)}`);
  }

  /** PROXY header in the first read (v1 as upstream; v2 too). */
  preamble(p: PendingClient): void {
    const s = p.sock;
    const n = s.read(preambleBuf, 0, preambleBuf.length);
    if (n === -EAGAIN) return;
    if (n <= 0) {
      s.close(); // gone (or failed) before saying anything
      this.pendingGone(p);
      return;
    }
    const d = preambleBuf.subarray(0, n);
    const r = parseProxyHeader(d);
    const addrs = r.ok ? r.addrs : null;
    const bad = !r.ok || (addrs !== null && (parseIP(addrs.srcIp) === null || parseIP(addrs.dstIp) === null));
    if (bad) {
      const err = r.ok ? "spp: bad magic number" : r.error;
      this.ctx.log.flow("local-fwd-error", `[!] tcp://${p.clientText}-${p.listenLocal}/${this.targetText(0)} local-fwd PP error: ${err}`);
      s.shutdownWrite();
      s.close();
      this.pendingGone(p);
      return;
    }
    this.dial(p, addrs, d, r.headerLen);
  }

  private targetText(ppDstPort: number): string {
    return endpointText(this.target, this.spec.host.port || ppDstPort);
  }

  /** Dials the guest for an accepted client; `early[from..]` are bytes it already sent. */
  dial(p: PendingClient, pp: ProxyAddresses | null, early: Uint8Array | null, from: number): void {
    const { stack, clock, gateways } = this.ctx;
    // Target port 0 means the listener's port, or the PROXY destination port.
    const port = this.spec.host.port || (pp !== null ? pp.dstPort : p.localPort);
    const src = guestSource(pp !== null ? parseIP(pp.srcIp) : p.client, this.target.family, gateways, stack.cfg.netV4);
    const v4 = this.target.family === 4;
    // Every loopback client comes from the gateway address: toward one
    // guest address and port they share one range of local ports.
    const local = v4 ? stack.tcp.freePortV4(ipV4Number(src), ipV4Number(this.target), port) : stack.tcp.freePortV6(src.bytes, this.target.bytes, port);
    if (local === 0) {
      this.ctx.stats.limit("local-fwd-ports");
      const pre = this.spec.proxyProtocol ? "PP " : "";
      this.ctx.log.flow("local-fwd-error", `[!] tcp://${p.clientText}-${p.listenLocal}/${endpointText(this.target, port)} local-fwd ${pre}error: no free local port toward the guest`);
      p.sock.reset();
      this.pendingGone(p);
      return;
    }
    // From here the splice owns the client; spliceDone() uncounts it.
    p.settled = true;
    this.waiting.delete(p);
    const splice = new TcpSplice(clock, false, this, this.ctx.keepalive, !this.ctx.log.quiet);
    const now = clock.now();
    const conn = v4
      ? stack.tcp.connectV4(ipV4Number(src), local, ipV4Number(this.target), port, splice, now)
      : stack.tcp.connectV6(src.bytes, local, this.target.bytes, port, splice, now);
    splice.bindGuest(conn);
    const target = endpointText(this.target, port);
    const guestLocal = endpointText(src, conn.destPort);
    const client = p.clientText;
    const listenLocal = p.listenLocal;
    this.meta.set(splice, { client, listenLocal, guestLocal, target });
    // Bytes after the PROXY header go first, then the rest of the stream.
    if (early !== null && from < early.length) conn.send(early, from, early.length - from, now);
    splice.attachHost(p.sock, client);
    clock.afterActivity();
  }

  guestEstablished(splice: TcpSplice): void {
    this.ctx.stats.bump("forward-ok");
    const m = this.meta.get(splice);
    if (m === undefined) return;
    const pp = this.spec.proxyProtocol ? "PP " : "";
    this.ctx.log.flow("conn-new", `[+] tcp://${m.client}-${m.listenLocal}/${m.guestLocal}-${m.target} local-fwd ${pp}conn`);
  }

  spliceDone(splice: TcpSplice): void {
    this.clients--;
    const m = this.meta.get(splice);
    if (m === undefined) return;
    const pp = this.spec.proxyProtocol ? "PP " : "";
    if (!splice.established) {
      this.ctx.stats.bump("forward-refused");
      this.ctx.log.flow("local-fwd-error", `[!] tcp://${m.client}-${m.listenLocal}/${m.target} local-fwd ${pp}error: ${splice.errors.format()}`);
    } else {
      this.ctx.log.flow("conn-done", `[-] tcp://${m.client}-${m.listenLocal}/${m.guestLocal}-${m.target} local-fwd ${pp}done: ${splice.errors.format()}`);
    }
  }
}

/** An accepted socket's own address, Go-style. */
function localText(fd: number, sa: SockAddr): string {
  return localAddress(fd, sa) < 0 ? "" : sockAddrText(sa);
}

// ---------------------------------------------------------------------------
// UDP

class UdpClient implements UdpHandler {
  flow: UdpFlow | null = null;
  readonly errors = new SpliceErrors();
  guestLocal = "";
  /** Where replies go. */
  readonly addr = new SockAddr();
  /** udpspp: the first datagram's header, put in front of every reply. */
  sppHeader: Uint8Array | null = null;

  constructor(
    readonly fwd: UdpForward,
    readonly key: ClientKey,
    from: SockAddr,
    readonly client: string,
    readonly target: string,
  ) {
    this.addr.copyFrom(from);
  }

  onDatagram(_flow: UdpFlow, buf: Uint8Array, off: number, len: number): void {
    this.fwd.replyTo(this, buf, off, len);
  }

  onClosed(_flow: UdpFlow, reason: "idle" | "closed"): void {
    if (reason === "idle") this.errors.stopL2R("i/o timeout", null);
    this.fwd.clientDone(this);
  }
}

/** A client's map key (sockAddrKey: no string per datagram for IPv4). */
type ClientKey = number | string;

class UdpForward implements UdpSocketOwner {
  private sock: UdpSocket | null = null;
  private readonly clients = new Map<ClientKey, UdpClient>();
  private readonly from = new SockAddr();
  private listenLocal = "";
  private port = 0;

  constructor(
    private readonly ctx: LocalForwardContext,
    readonly spec: ForwardSpec,
    private readonly target: IP,
  ) {}

  listen(bindIp: string): string {
    const { sa, text } = listenAddress(bindIp, this.spec.bind.port);
    const sock = UdpSocket.bound(this.ctx.reactor, sa, this);
    if (sock instanceof DialError) {
      throw new ListenError(`listen udp ${formatHostPort(bindIp, this.spec.bind.port)}: ${sock.text}`);
    }
    this.sock = sock;
    this.port = sock.localPort();
    this.listenLocal = formatHostPort(text, this.port);
    return this.listenLocal;
  }

  stop(): void {
    this.sock?.close();
    for (const c of this.clients.values()) c.flow?.close();
  }

  udpReadable(sock: UdpSocket): void {
    const buf = datagramBuffer;
    for (let budget = DATAGRAMS_PER_TURN; sock.readable; budget--) {
      if (budget === 0) {
        sock.readLater();
        break;
      }
      const n = sock.recvFrom(buf, 0, buf.length, this.from);
      if (n < 0) {
        if (n === -EAGAIN) break;
        continue; // an error queued for an earlier reply: not this socket's end
      }
      this.datagram(buf, n, this.from);
    }
  }

  private datagram(data: Uint8Array, len: number, from: SockAddr): void {
    const key = sockAddrKey(from);
    let c = this.clients.get(key);
    let off = 0;
    const spp = this.spec.proxyProtocol;
    if (c === undefined) {
      const client = sockAddrText(from);
      let pp: ProxyAddresses | null = null;
      let header: Uint8Array | null = null;
      if (spp) {
        const r = parseSppHeader(data.subarray(0, len));
        if (!r.ok) {
          this.ctx.log.flow("local-fwd-error", `[!] udp://${client}-${this.listenLocal}/${endpointText(this.target, this.spec.host.port)} local-fwd PP error: ${r.error}`);
          return;
        }
        pp = r.addrs;
        header = data.slice(0, SPP_HEADER_LEN);
        off = SPP_HEADER_LEN;
      }
      if (this.clients.size >= MAX_UDP_CLIENTS) {
        this.ctx.stats.drop("udp-forward-clients-full");
        return;
      }
      const opened = this.open(key, from, client, pp, header);
      if (opened === null) return;
      c = opened;
    } else if (spp) {
      // Later datagrams just lose their first 38 bytes, whatever they are.
      if (len < SPP_HEADER_LEN) {
        this.ctx.stats.drop("udp-spp-short");
        return;
      }
      off = SPP_HEADER_LEN;
    }
    c.flow!.send(data, off, len - off, this.ctx.clock.now());
    this.ctx.clock.afterActivity();
  }

  private open(key: ClientKey, from: SockAddr, client: string, pp: ProxyAddresses | null, header: Uint8Array | null): UdpClient | null {
    const { stack, clock, gateways } = this.ctx;
    const targetPort = this.spec.host.port || (pp !== null ? pp.dstPort : this.port);
    const src = guestSource(pp !== null ? parseIP(pp.srcIp) : sockAddrIP(from), this.target.family, gateways, stack.cfg.netV4);
    const target = endpointText(this.target, targetPort);
    const c = new UdpClient(this, key, from, client, target);
    c.sppHeader = header;
    const now = clock.now();
    try {
      c.flow =
        this.target.family === 4
          ? stack.udp.openV4(ipV4Number(src), 0, ipV4Number(this.target), targetPort, c, now)
          : stack.udp.openV6(src.bytes, 0, this.target.bytes, targetPort, c, now);
    } catch (e) {
      c.errors.stopR2L((e as Error).message, null);
      this.ctx.log.flow("local-fwd-error", `[!] udp://${client}-${this.listenLocal}/${target} local-fwd ${this.pp}error: ${c.errors.format()}`);
      return null;
    }
    c.guestLocal = endpointText(src, c.flow.destPort);
    this.clients.set(key, c);
    this.ctx.stats.bump("forward-ok");
    this.ctx.log.flow("conn-new", `[+] udp://${client}-${this.listenLocal}/${c.guestLocal}-${target} local-fwd ${this.pp}conn`);
    return c;
  }

  private get pp(): string {
    return this.spec.proxyProtocol ? "PP " : "";
  }

  replyTo(c: UdpClient, buf: Uint8Array, off: number, len: number): void {
    let sent: number;
    if (c.sppHeader !== null) {
      const out = new Uint8Array(SPP_HEADER_LEN + len);
      out.set(c.sppHeader);
      out.set(buf.subarray(off, off + len), SPP_HEADER_LEN);
      sent = this.sock!.sendTo(out, 0, out.length, c.addr);
    } else {
      sent = this.sock!.sendTo(buf, off, len, c.addr);
    }
    if (sent < 0) this.ctx.stats.drop("udp-forward-send-failed");
    // udprpc: the client's side closes after its first reply.
    if (this.spec.rpc) c.flow!.close();
  }

  clientDone(c: UdpClient): void {
    this.clients.delete(c.key);
    this.ctx.log.flow("conn-done", `[-] udp://${c.client}-${this.listenLocal}/${c.guestLocal}-${c.target} local-fwd ${this.pp}done: ${c.errors.format()}`);
  }
}

// ---------------------------------------------------------------------------

export class LocalForwards {
  private readonly live = new Set<TcpForward | UdpForward>();

  constructor(
    private readonly specs: readonly ForwardSpec[],
    private readonly resolver: Resolver,
  ) {}

  /**
   * Startup step 12 (docs/compatibility.md): for each -L in order, resolve
   * both sides (names only now), listen, print the listen line. Failure:
   * the caller prints the line and exits 247.
   */
  async start(ctx: LocalForwardContext, fail: (line: string) => never): Promise<void> {
    for (const spec of this.specs) {
      const where = formatSpecAddress(spec.transport, formatSpecSide({ ip: spec.bind.ip, port: spec.bind.port }, spec.bind.label));
      const bindIp = await this.resolve(spec.bind.label, spec.bind.ip!);
      const targetIp = await this.resolve(spec.host.label, spec.host.ip!);
      if (bindIp === null || targetIp === null) {
        const shown = formatSpecAddress(spec.transport, formatSpecSide(bindIp === null ? null : { ip: bindIp, port: spec.bind.port }, spec.bind.label));
        fail(`[!] Failed to listen on ${shown}: DNS lookup failed`);
      }
      try {
        this.open(ctx, spec, bindIp, parseIP(targetIp)!);
      } catch (e) {
        if (!(e instanceof ListenError)) throw e;
        fail(`[!] Failed to listen on ${where}: ${e.message}`);
      }
    }
  }

  /**
   * A plain tcp or udp forward added while running (-api-socket): listens
   * now and prints the listen line. Returns what closes its listener (its
   * clients already spliced live on), or Go's listen error text.
   */
  add(ctx: LocalForwardContext, fwd: HostFwd): ForwardHandle | string {
    const spec: ForwardSpec = {
      scheme: fwd.proto,
      transport: fwd.proto,
      rpc: false,
      proxyProtocol: false,
      bind: { ip: fwd.hostAddr, label: null, port: fwd.hostPort },
      host: { ip: fwd.guestAddr, label: null, port: fwd.guestPort },
    };
    try {
      const f = this.open(ctx, spec, fwd.hostAddr, parseIP(fwd.guestAddr)!);
      return {
        stop: () => {
          f.stop();
          this.live.delete(f);
        },
      };
    } catch (e) {
      if (!(e instanceof ListenError)) throw e;
      return e.message;
    }
  }

  /** Listens for one forward and prints its listen line; throws ListenError. */
  private open(ctx: LocalForwardContext, spec: ForwardSpec, bindIp: string, target: IP): TcpForward | UdpForward {
    const f = spec.transport === "tcp" ? new TcpForward(ctx, spec, target) : new UdpForward(ctx, spec, target);
    const addr = f.listen(bindIp);
    this.live.add(f);
    ctx.log.listen(`[+] local-fwd Local ${spec.proxyProtocol ? "PP " : ""}listen ${spec.transport}://${addr}`);
    return f;
  }

  private async resolve(label: string | null, ip: string): Promise<string | null> {
    if (label === null) return ip;
    try {
      return (await this.resolver.resolveLabel(label, 4)).ip;
    } catch {
      return null;
    }
  }

  stop(): void {
    for (const f of this.live) f.stop();
    this.live.clear();
  }
}
