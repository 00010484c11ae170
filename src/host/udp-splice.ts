// One guest UDP flow spliced to one connected host UDP socket (contract
// §8.1, §8.5): one datagram in, one datagram out, boundaries kept. While
// the target is still being resolved (-R names) datagrams wait in a small
// bounded queue. The flow's idle timer (in the engine) ends it.
import { EAGAIN, errnoText } from "../../ffi/libc.ts";
import type { UdpFlow, UdpHandler } from "../stack/udp.ts";
import type { Stats } from "../stack/stats.ts";
import type { Reactor } from "../io/reactor.ts";
import { DATAGRAMS_PER_TURN, datagramBuffer, UdpSocket, type UdpSocketOwner } from "../io/udp-socket.ts";
import { DialError } from "../io/dial-error.ts";
import { endpointText } from "../io/addr.ts";
import type { DialTarget, FlowLabels } from "./dialer.ts";
import type { StackRuntime } from "./runtime.ts";
import { SpliceErrors } from "./splice-errors.ts";

/** Datagrams held while the target is being resolved. */
const MAX_QUEUED = 64;
const MAX_QUEUED_BYTES = 1 << 20;

export interface UdpSpliceOwner {
  udpSpliceDone(splice: UdpSplice): void;
}

export class UdpSplice implements UdpHandler, UdpSocketOwner {
  sock: UdpSocket | null = null;
  readonly errors = new SpliceErrors();
  /** The host socket's addresses, Go-style, captured at connect when logging (for log lines). */
  hostLocal = "";
  hostRemote = "";
  private queue: Uint8Array[] | null = [];
  private queuedBytes = 0;
  private closed = false;
  private reported = false;
  /** -R udprpc: the flow ends right after the first reply reaches the guest (contract §8.4). */
  closeAfterReply = false;
  /** Set by the dialer once connected: how the flow's log lines name it. */
  labels: FlowLabels | null = null;

  constructor(
    readonly flow: UdpFlow,
    private readonly rt: StackRuntime,
    private readonly reactor: Reactor,
    private readonly stats: Stats,
    private readonly owner: UdpSpliceOwner,
    /** Log lines will name the host socket's addresses: read them at connect. */
    private readonly wantAddresses: boolean,
  ) {
    flow.handler = this;
  }

  /** Creates the connected host socket and sends what was queued; null, or why it failed. */
  connect(target: DialTarget): DialError | null {
    const r = UdpSocket.connected(this.reactor, target.ip.bytes, target.port, target.source?.bytes ?? null, this);
    if (r instanceof DialError) return r;
    this.sock = r;
    if (this.wantAddresses) {
      this.hostLocal = r.localText();
      this.hostRemote = endpointText(target.ip, target.port);
    }
    const q = this.queue!;
    this.queue = null;
    for (const d of q) this.sendToHost(d, 0, d.length);
    return null;
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
    this.sendToHost(buf, off, len);
  }

  private sendToHost(buf: Uint8Array, off: number, len: number): void {
    if (this.sock === null) return;
    if (this.sock.send(buf, off, len) < 0) this.stats.drop("udp-host-send-failed");
  }

  udpReadable(sock: UdpSocket): void {
    const now = this.rt.now();
    let budget = DATAGRAMS_PER_TURN;
    while (sock.readable && !this.closed) {
      if (budget-- === 0) {
        sock.readLater();
        break;
      }
      const n = sock.recv(datagramBuffer, 0, datagramBuffer.length);
      if (n === -EAGAIN) break;
      if (n < 0) {
        this.hostError(-n);
        break;
      }
      this.flow.send(datagramBuffer, 0, n, now);
      if (this.closeAfterReply) this.flow.close();
    }
    this.rt.afterActivity();
  }

  private hostError(err: number): void {
    this.errors.stopR2L(`read udp ${this.hostLocal}->${this.hostRemote}: read: ${errnoText(err)}`, null);
    // upstream ends the flow at its first read error (contract §8.1)
    this.flow.close();
  }

  onClosed(_flow: UdpFlow, reason: "idle" | "closed"): void {
    this.closed = true;
    if (reason === "idle") this.errors.stopL2R(`i/o timeout`, null);
    this.sock?.close();
    this.queue = null;
    if (!this.reported) {
      this.reported = true;
      this.owner.udpSpliceDone(this);
    }
  }
}
