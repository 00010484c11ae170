// One guest UDP flow spliced to one connected host UDP socket (contract
// §8.1, §8.5): one datagram in, one datagram out, boundaries kept. The
// socket is created asynchronously, so datagrams that arrive first wait in
// a small bounded queue. The flow's idle timer (in the engine) ends it.
import type { udp } from "bun";
import type { UdpFlow, UdpHandler } from "../stack/udp.ts";
import type { Stats } from "../stack/stats.ts";
import type { StackRuntime } from "./runtime.ts";
import { SpliceErrors } from "./splice-errors.ts";
import { formatHostPort } from "../cli/goaddr.ts";

/** Datagrams held while the host socket is being created. */
const MAX_QUEUED = 64;
const MAX_QUEUED_BYTES = 1 << 20;

export interface UdpSpliceOwner {
  udpSpliceDone(splice: UdpSplice): void;
}

export interface UdpTarget {
  ip: string;
  port: number;
  /** Source address to bind (-source-ipv4/-source-ipv6), or null. */
  source: string | null;
}

export class UdpSplice implements UdpHandler {
  sock: udp.ConnectedSocket<"uint8array"> | null = null;
  readonly errors = new SpliceErrors();
  /** The host socket's addresses, Go-style (for log lines). */
  hostLocal = "";
  hostRemote = "";
  private queue: Uint8Array[] | null = [];
  private queuedBytes = 0;
  private closed = false;
  private reported = false;
  /** -R udprpc: the flow ends right after the first reply reaches the guest (contract §8.4). */
  closeAfterReply = false;

  constructor(
    readonly flow: UdpFlow,
    private readonly rt: StackRuntime,
    private readonly stats: Stats,
    private readonly owner: UdpSpliceOwner,
  ) {
    flow.handler = this;
  }

  /** Creates the connected host socket; resolves false if that failed. */
  async connect(target: UdpTarget): Promise<string | null> {
    try {
      // Bun binds 0.0.0.0 unless told otherwise, and an IPv4 socket cannot
      // connect to an IPv6 target: bind the target's family explicitly.
      const bindTo = target.source ?? (target.ip.includes(":") ? "::" : "0.0.0.0");
      const sock = await Bun.udpSocket({
        binaryType: "uint8array",
        hostname: bindTo,
        connect: { hostname: target.ip, port: target.port },
        socket: {
          data: (_s, data) => this.hostDatagram(data),
          // Bun 1.4.5 calls error(err) with the socket as `this`, although
          // its types say error(socket, err): take the Error wherever it is.
          error: (a: unknown, b?: unknown) => this.hostError((b ?? a) as Error),
        },
      });
      if (this.closed) {
        sock.close();
        return "closed";
      }
      this.sock = sock;
      this.hostLocal = formatHostPort(sock.address.address, sock.address.port);
      this.hostRemote = formatHostPort(target.ip, target.port);
      const q = this.queue!;
      this.queue = null;
      for (const d of q) this.sendToHost(d);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  }

  onDatagram(_flow: UdpFlow, buf: Uint8Array, off: number, len: number): void {
    if (this.queue !== null) {
      if (this.queue.length >= MAX_QUEUED || this.queuedBytes + len > MAX_QUEUED_BYTES) {
        this.stats.drop("udp-connect-queue-full");
        return;
      }
      this.queue.push(buf.slice(off, off + len));
      this.queuedBytes += len;
      return;
    }
    this.sendToHost(buf.subarray(off, off + len));
  }

  private sendToHost(data: Uint8Array): void {
    if (!this.sock!.send(data)) this.stats.drop("udp-host-send-failed");
  }

  private hostDatagram(data: Uint8Array): void {
    if (this.closed) return;
    this.flow.send(data, 0, data.length, this.rt.now());
    this.rt.afterActivity();
    if (this.closeAfterReply) this.flow.close();
  }

  private hostError(err: Error | undefined): void {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const text = code === "ECONNREFUSED" ? "connection refused" : (err?.message ?? "error");
    this.errors.stopR2L(`read udp ${this.hostLocal}: ${text}`, null);
    // upstream ends the flow at its first read error (contract §8.1)
    this.flow.close();
  }

  onClosed(_flow: UdpFlow, reason: "idle" | "closed"): void {
    this.closed = true;
    if (reason === "idle") this.errors.stopL2R(`i/o timeout`, null);
    this.sock?.close();
    this.sock = null;
    this.queue = null;
    if (!this.reported) {
      this.reported = true;
      this.owner.udpSpliceDone(this);
    }
  }
}
