// The parsed form of one incoming TCP segment, as the connection state
// machine sees it. One instance is reused for every segment (no per-packet
// allocation); the payload stays in the frame buffer.
import { TcpOptions } from "../../wire/tcp.ts";

export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;
export const URG = 0x20;

export class TcpSegment {
  seq = 0;
  ack = 0;
  flags = 0;
  /** The raw 16-bit window field (scale it with the peer's shift). */
  window = 0;
  readonly options = new TcpOptions();
  /** The option list was malformed: honour nothing from it. */
  badOptions = false;
  buf: Uint8Array = new Uint8Array(0);
  payloadOff = 0;
  payloadLen = 0;

  /** Sequence space the segment occupies: payload plus SYN and FIN. */
  get seqLen(): number {
    return this.payloadLen + (this.flags & SYN ? 1 : 0) + (this.flags & FIN ? 1 : 0);
  }
}
