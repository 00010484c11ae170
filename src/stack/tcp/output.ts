// What a TCP connection needs from the layer that owns it: segments out,
// a place in the timer heap and the end-of-batch ACK list, the shared
// buffer budget, and the layer-wide counters it takes part in. The
// connection sees only this, so it can be driven on its own (a fake output
// and a virtual clock); TcpLayer implements it.
import type { BufferBudget } from "./budget.ts";
import type { TcpConnection } from "./connection.ts";

export interface TcpOutput {
  /** Storage for every connection's send, receive and out-of-order buffers. */
  readonly budget: BufferBudget;

  /**
   * Sends a segment without payload: `flags` (SYN, FIN, RST, ACK) at
   * sequence number `seq`. Options, the ACK field and the window come from
   * the connection; a segment with ACK calls conn.sender.noteAckSent().
   */
  sendControl(conn: TcpConnection, flags: number, seq: number, now: number): void;
  /** Sends `len` bytes of the send buffer from sequence number `seq` (with PSH when `push`). */
  sendData(conn: TcpConnection, seq: number, len: number, push: boolean, now: number): void;
  /** Payload of one data segment: one segment's worth, or a TSO super-segment when the device cuts it. */
  maxSegmentPayload(conn: TcpConnection): number;

  /** conn.deadline changed: move it in the timer heap. */
  schedule(conn: TcpConnection): void;
  /** An ACK is owed: conn.sender.flushAck at the end of this batch of input. */
  markDirty(conn: TcpConnection): void;

  /** The connection entered CLOSED: forget it (table, timers). */
  remove(conn: TcpConnection): void;
  /** The connection entered TIME-WAIT (the layer bounds how many stay there). */
  enteredTimeWait(conn: TcpConnection): void;
  /** A passive open left SYN-PENDING. */
  handshakeDone(conn: TcpConnection): void;
  /** A passive open entered (+1) or left (-1) SYN-RECEIVED. */
  synReceivedChanged(conn: TcpConnection, delta: 1 | -1): void;
  /** So many connections are SYN-RECEIVED that SYN-ACKs are retried less. */
  readonly synReceivedPressure: boolean;

  /** Counts a dropped segment (or an ACK held back) under `reason`. */
  countDrop(reason: string): void;
}
