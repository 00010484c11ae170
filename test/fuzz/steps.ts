// What a fuzz run is made of: frames into a device, host-side actions and
// clock jumps. Steps are plain data, so a run can be written to a file and
// replayed without the generators that made it.

/** Receive facts a device vouches for (RxMeta), as the vnet_hdr path gives them. */
export interface FrameMeta {
  trusted: boolean;
  gsoType: number;
  gsoSize: number;
}

export interface FrameStep {
  k: "frame";
  /** Index of the device (and its stack). */
  dev: number;
  bytes: Uint8Array;
  meta: FrameMeta | null;
  /** End of a receive batch: poll the stack after this frame. */
  batchEnd: boolean;
}

/**
 * The host side of the engine. `pick` chooses among the live objects of
 * the kind the op works on (pending handshakes, connections, UDP flows),
 * modulo their number, so a step stays meaningful in a replay.
 */
export type HostOp =
  | "accept" // accept a pending handshake (arg: read mode 0 eager, 1 manual, 2 partial)
  | "refuse" // RST the guest's SYN
  | "unreachable" // ICMP unreachable for the guest's SYN
  | "send" // host data toward the guest (arg: length)
  | "read" // the host drains a manual-mode receive buffer (arg: max bytes)
  | "shutdown" // the host closes its write side
  | "abort" // the host resets the connection
  | "keepalive" // the host changes keepalive/user timeout (arg: ms)
  | "connect" // active open toward the guest, -L (arg: family 4/6, port)
  | "udp-reply" // a datagram from the host to the guest (arg: length)
  | "udp-open" // a flow opened toward the guest, -L (arg: family 4/6)
  | "udp-close" // the host closes a flow
  | "udp-idle"; // the host changes a flow's idle time (arg: ms)

export interface HostStep {
  k: "host";
  dev: number;
  op: HostOp;
  pick: number;
  arg: number;
  arg2: number;
}

export interface ClockStep {
  k: "clock";
  ms: number;
}

/**
 * Arms or disarms the stale-byte check: disarmed while a priming phase
 * puts the taint marker into the engine's buffers, armed once everything
 * that legitimately carried it is gone.
 */
export interface TaintStep {
  k: "taint";
  armed: boolean;
}

export type Step = FrameStep | HostStep | ClockStep | TaintStep;

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** One JSON line per step. */
export function encodeStep(s: Step): string {
  if (s.k === "frame") {
    return JSON.stringify({ k: "frame", dev: s.dev, hex: hex(s.bytes), meta: s.meta, batchEnd: s.batchEnd });
  }
  return JSON.stringify(s);
}

export function decodeStep(line: string): Step {
  const o = JSON.parse(line) as Record<string, unknown>;
  if (o.k === "frame") {
    return {
      k: "frame",
      dev: o.dev as number,
      bytes: new Uint8Array(Buffer.from(o.hex as string, "hex")),
      meta: o.meta as FrameMeta | null,
      batchEnd: o.batchEnd as boolean,
    };
  }
  if (o.k === "host" || o.k === "clock" || o.k === "taint") return o as unknown as Step;
  throw new Error(`not a fuzz step: ${line.slice(0, 80)}`);
}
