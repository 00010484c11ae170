// -L: host listeners whose connections and datagrams are dialled into the
// guest (contract §9, §10). The guest sees the client's real address
// where it can (the engine sends from any address): the accepted peer, or
// the address from a PROXY (v1 or v2) or SPP header; loopback and other
// statically denied sources, and cross-family ones, become the gateway
// address instead (§9.2).
//
// UDP uses one listening socket and tells clients apart by address, which
// avoids upstream's connected-socket race (§9.1); replies come from the
// listener's port as before.
import type { Socket, SocketHandler, TCPSocketListener, udp } from "bun";
import type { ForwardSpec } from "../cli/forward.ts";
import { formatSpecAddress, formatSpecSide } from "../cli/forward.ts";
import { formatHostPort } from "../cli/goaddr.ts";
import { formatIP, parseGoIP, type ParsedIP } from "../cli/goip.ts";
import type { Stack } from "../stack/stack.ts";
import type { Stats } from "../stack/stats.ts";
import type { UdpFlow, UdpHandler } from "../stack/udp.ts";
import { parseProxyHeader, parseSppHeader, SPP_HEADER_LEN, type ProxyAddresses } from "../wire/proxy.ts";
import type { Logger } from "./log.ts";
import type { Resolver } from "./resolve.ts";
import type { StackRuntime } from "./runtime.ts";
import { STATIC_DENY } from "./prefix.ts";
import { SpliceErrors } from "./splice-errors.ts";
import { TcpSplice, type HostKeepalive, type SpliceOwner } from "./tcp-splice.ts";

/** UDP clients per -L listener; beyond this new clients are dropped. */
const MAX_UDP_CLIENTS = 4096;

export interface Gateways {
  v4: ParsedIP;
  v6: ParsedIP;
}

/** contract §9.2: the address the guest sees a forwarded client come from. */
export function guestSource(candidate: string | null, targetFamily: 4 | 6, gw: Gateways): ParsedIP {
  const c = candidate === null ? null : parseGoIP(candidate);
  if (c === null || c.family !== targetFamily || STATIC_DENY.contains(c)) return targetFamily === 4 ? gw.v4 : gw.v6;
  return c;
}

function goListenError(network: string, addr: string, e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const why: Record<string, string> = {
    EADDRINUSE: "address already in use",
    EACCES: "permission denied",
    EADDRNOTAVAIL: "cannot assign requested address",
  };
  return `listen ${network} ${addr}: bind: ${(code && why[code]) ?? (e as Error).message}`;
}

/** Everything -L needs from the process. */
export interface LocalForwardContext {
  stack: Stack;
  rt: StackRuntime;
  log: Logger;
  stats: Stats;
  gateways: Gateways;
  keepalive: HostKeepalive;
}

// ---------------------------------------------------------------------------
// TCP

/** An accepted client before its guest connection exists (PROXY header pending). */
class PendingClient {
  constructor(readonly sock: Socket<PendingClient | TcpSplice>) {}
}

class TcpForward implements SpliceOwner {
  private listener: TCPSocketListener<PendingClient | TcpSplice> | null = null;
  private readonly meta = new WeakMap<TcpSplice, { client: string; listenLocal: string; guestLocal: string; target: string }>();
  readonly splices = new Set<TcpSplice>();

  constructor(
    private readonly ctx: LocalForwardContext,
    readonly spec: ForwardSpec,
    private readonly target: ParsedIP,
  ) {}

  /** Listens; returns the address for the "Local listen" line. */
  listen(bindIp: string): string {
    const wildcard = bindIp === "0.0.0.0" || bindIp === "::";
    const fwd = this;
    const handlers: SocketHandler<PendingClient | TcpSplice> = {
      binaryType: "uint8array",
      open(s) {
        const p = new PendingClient(s);
        s.data = p;
        if (!fwd.spec.proxyProtocol) fwd.dial(p, null, null);
      },
      data(s, d) {
        const x = s.data;
        if (x instanceof TcpSplice) x.hostData(d);
        else fwd.preamble(x, d);
      },
      drain(s) {
        const x = s.data;
        if (x instanceof TcpSplice) x.hostDrain();
      },
      end(s) {
        const x = s.data;
        if (x instanceof TcpSplice) x.hostEnd();
        else s.end();
      },
      error(s, e) {
        const x = s.data;
        if (x instanceof TcpSplice) x.hostError(e);
      },
      close(s, e) {
        const x = s.data;
        if (x instanceof TcpSplice) x.hostClose(e);
      },
    };
    this.listener = Bun.listen<PendingClient | TcpSplice>({
      hostname: wildcard ? "::" : bindIp,
      port: this.spec.bind.port,
      allowHalfOpen: true,
      exclusive: true,
      socket: handlers,
    });
    return formatHostPort(wildcard ? "::" : bindIp, this.listener.port);
  }

  stop(): void {
    this.listener?.stop(true);
  }

  /** PROXY header in the first read (contract §10.1; v2 too). */
  preamble(p: PendingClient, d: Uint8Array): void {
    const s = p.sock;
    const client = formatHostPort(s.remoteAddress, s.remotePort);
    const listenLocal = formatHostPort(s.localAddress, s.localPort);
    const r = parseProxyHeader(d);
    const addrs = r.ok ? r.addrs : null;
    const bad = !r.ok || (addrs !== null && (parseGoIP(addrs.srcIp) === null || parseGoIP(addrs.dstIp) === null));
    if (bad) {
      const err = r.ok ? "spp: bad magic number" : r.error;
      this.ctx.log.flow(`[!] tcp://${client}-${listenLocal}/${this.targetText(0)} local-fwd PP error: ${err}`);
      s.end();
      return;
    }
    this.dial(p, addrs, d.subarray(r.headerLen));
  }

  private targetText(ppDstPort: number): string {
    return formatHostPort(formatIP(this.target), this.spec.host.port || ppDstPort);
  }

  /** Dials the guest for an accepted client (contract §9.4). */
  dial(p: PendingClient, pp: ProxyAddresses | null, leftover: Uint8Array | null): void {
    const { stack, rt, gateways } = this.ctx;
    const s = p.sock;
    const client = formatHostPort(s.remoteAddress, s.remotePort);
    const listenLocal = formatHostPort(s.localAddress, s.localPort);
    // §9.3: target port 0 means the listener's port, or the PROXY destination port.
    const port = this.spec.host.port || (pp !== null ? pp.dstPort : s.localPort);
    const src = guestSource(pp !== null ? pp.srcIp : s.remoteAddress, this.target.family, gateways);
    const splice = new TcpSplice(rt, false, this, this.ctx.keepalive, !this.ctx.log.quiet);
    const now = rt.now();
    const conn =
      this.target.family === 4
        ? stack.tcp.connectV4(u32(src), 0, u32(this.target), port, splice, now)
        : stack.tcp.connectV6(src.bytes, 0, this.target.bytes, port, splice, now);
    splice.bindGuest(conn);
    this.splices.add(splice);
    const target = formatHostPort(formatIP(this.target), port);
    this.meta.set(splice, { client, listenLocal, guestLocal: formatHostPort(formatIP(src), conn.localPort), target });
    const pp_ = this.spec.proxyProtocol ? "PP " : "";
    splice.onGuestEstablished = () => {
      this.ctx.stats.bump("forward-ok");
      this.ctx.log.flow(`[+] tcp://${client}-${listenLocal}/${formatHostPort(formatIP(src), conn.localPort)}-${target} local-fwd ${pp_}conn`);
    };
    splice.attachHost(s as Socket<TcpSplice>);
    if (leftover !== null && leftover.length > 0) splice.hostData(leftover);
    rt.afterActivity();
  }

  spliceDone(splice: TcpSplice): void {
    this.splices.delete(splice);
    const m = this.meta.get(splice);
    if (m === undefined) return;
    const pp = this.spec.proxyProtocol ? "PP " : "";
    if (!splice.established) {
      this.ctx.stats.bump("forward-refused");
      this.ctx.log.flow(`[!] tcp://${m.client}-${m.listenLocal}/${m.target} local-fwd ${pp}error: ${splice.errors.format()}`);
    } else {
      this.ctx.log.flow(`[-] tcp://${m.client}-${m.listenLocal}/${m.guestLocal}-${m.target} local-fwd ${pp}done: ${splice.errors.format()}`);
    }
  }
}

function u32(ip: ParsedIP): number {
  const b = ip.bytes;
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

// ---------------------------------------------------------------------------
// UDP

class UdpClient implements UdpHandler {
  flow: UdpFlow | null = null;
  readonly errors = new SpliceErrors();
  guestLocal = "";
  /** udpspp: the first datagram's header, put in front of every reply (§10.2). */
  sppHeader: Uint8Array | null = null;

  constructor(
    readonly fwd: UdpForward,
    readonly key: string,
    readonly address: string,
    readonly port: number,
    readonly client: string,
    readonly target: string,
  ) {}

  onDatagram(_flow: UdpFlow, buf: Uint8Array, off: number, len: number): void {
    this.fwd.replyTo(this, buf.subarray(off, off + len));
  }

  onClosed(_flow: UdpFlow, reason: "idle" | "closed"): void {
    if (reason === "idle") this.errors.stopL2R("i/o timeout", null);
    this.fwd.clientDone(this);
  }
}

class UdpForward {
  private sock: udp.Socket<"uint8array"> | null = null;
  private readonly clients = new Map<string, UdpClient>();
  private listenLocal = "";

  constructor(
    private readonly ctx: LocalForwardContext,
    readonly spec: ForwardSpec,
    private readonly target: ParsedIP,
  ) {}

  get clientCount(): number {
    return this.clients.size;
  }

  async listen(bindIp: string): Promise<string> {
    const wildcard = bindIp === "0.0.0.0" || bindIp === "::";
    this.sock = await Bun.udpSocket({
      hostname: wildcard ? "::" : bindIp,
      port: this.spec.bind.port,
      binaryType: "uint8array",
      socket: {
        data: (_s, data, port, address) => this.datagram(data, port, address),
      },
    });
    this.listenLocal = formatHostPort(wildcard ? "::" : bindIp, this.sock.port);
    return this.listenLocal;
  }

  stop(): void {
    this.sock?.close();
    for (const c of this.clients.values()) c.flow?.close();
  }

  private datagram(data: Uint8Array, port: number, address: string): void {
    const key = `${address}|${port}`;
    let c = this.clients.get(key);
    let payload = data;
    const spp = this.spec.proxyProtocol;
    if (c === undefined) {
      const client = formatHostPort(address, port);
      let pp: ProxyAddresses | null = null;
      let header: Uint8Array | null = null;
      if (spp) {
        const r = parseSppHeader(data);
        if (!r.ok) {
          this.ctx.log.flow(`[!] udp://${client}-${this.listenLocal}/${formatHostPort(formatIP(this.target), this.spec.host.port)} local-fwd PP error: ${r.error}`);
          return;
        }
        pp = r.addrs;
        header = data.slice(0, SPP_HEADER_LEN);
        payload = data.subarray(SPP_HEADER_LEN);
      }
      if (this.clients.size >= MAX_UDP_CLIENTS) {
        this.ctx.stats.drop("udp-forward-clients-full");
        return;
      }
      const opened = this.open(key, address, port, client, pp, header);
      if (opened === null) return;
      c = opened;
    } else if (spp) {
      // Later datagrams just lose their first 38 bytes, whatever they are.
      if (data.length < SPP_HEADER_LEN) {
        this.ctx.stats.drop("udp-spp-short");
        return;
      }
      payload = data.subarray(SPP_HEADER_LEN);
    }
    c.flow!.send(payload, 0, payload.length, this.ctx.rt.now());
    this.ctx.rt.afterActivity();
  }

  private open(key: string, address: string, port: number, client: string, pp: ProxyAddresses | null, header: Uint8Array | null): UdpClient | null {
    const { stack, rt, gateways } = this.ctx;
    const targetPort = this.spec.host.port || (pp !== null ? pp.dstPort : this.sock!.port);
    const src = guestSource(pp !== null ? pp.srcIp : address, this.target.family, gateways);
    const target = formatHostPort(formatIP(this.target), targetPort);
    const c = new UdpClient(this, key, address, port, client, target);
    c.sppHeader = header;
    const now = rt.now();
    try {
      c.flow =
        this.target.family === 4
          ? stack.udp.openV4(u32(src), 0, u32(this.target), targetPort, c, now)
          : stack.udp.openV6(src.bytes, 0, this.target.bytes, targetPort, c, now);
    } catch (e) {
      c.errors.stopR2L((e as Error).message, null);
      this.ctx.log.flow(`[!] udp://${client}-${this.listenLocal}/${target} local-fwd ${this.pp}error: ${c.errors.format()}`);
      return null;
    }
    c.guestLocal = formatHostPort(formatIP(src), c.flow.localPort);
    this.clients.set(key, c);
    this.ctx.stats.bump("forward-ok");
    this.ctx.log.flow(`[+] udp://${client}-${this.listenLocal}/${c.guestLocal}-${target} local-fwd ${this.pp}conn`);
    return c;
  }

  private get pp(): string {
    return this.spec.proxyProtocol ? "PP " : "";
  }

  replyTo(c: UdpClient, data: Uint8Array): void {
    let out = data;
    if (c.sppHeader !== null) {
      out = new Uint8Array(SPP_HEADER_LEN + data.length);
      out.set(c.sppHeader);
      out.set(data, SPP_HEADER_LEN);
    }
    if (!this.sock!.send(out, c.port, c.address)) this.ctx.stats.drop("udp-forward-send-failed");
    // udprpc: the client's side closes after its first reply (contract §8.4).
    if (this.spec.rpc) c.flow!.close();
  }

  clientDone(c: UdpClient): void {
    this.clients.delete(c.key);
    this.ctx.log.flow(`[-] udp://${c.client}-${this.listenLocal}/${c.guestLocal}-${c.target} local-fwd ${this.pp}done: ${c.errors.format()}`);
  }
}

// ---------------------------------------------------------------------------

export class LocalForwards {
  private readonly tcp: TcpForward[] = [];
  private readonly udp: UdpForward[] = [];

  constructor(
    private readonly specs: readonly ForwardSpec[],
    private readonly resolver: Resolver,
  ) {}

  /**
   * contract §2 step 12: for each -L in order, resolve both sides (names
   * only now, §9.1), listen, print the listen line. Failure: the caller
   * prints the line and exits 247.
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
      const target = parseGoIP(targetIp)!;
      let addr: string;
      try {
        if (spec.transport === "tcp") {
          const f = new TcpForward(ctx, spec, target);
          addr = f.listen(bindIp);
          this.tcp.push(f);
        } else {
          const f = new UdpForward(ctx, spec, target);
          addr = await f.listen(bindIp);
          this.udp.push(f);
        }
      } catch (e) {
        fail(`[!] Failed to listen on ${where}: ${goListenError(spec.transport, formatHostPort(bindIp, spec.bind.port), e)}`);
      }
      ctx.log.flow(`[+] local-fwd Local ${spec.proxyProtocol ? "PP " : ""}listen ${spec.transport}://${addr}`);
    }
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
    for (const f of this.tcp) f.stop();
    for (const f of this.udp) f.stop();
  }
}
