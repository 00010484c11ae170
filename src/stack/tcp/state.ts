// The states, tunables and host-side callbacks of a TCP connection, apart
// from the connection itself (connection.ts, which exports them again for
// the rest of the engine and the host side), so its parts import them
// without importing the connection.
import type { TcpConnection } from "./connection.ts";

export const TcpState = {
  /** A guest SYN is waiting for the host connect() verdict; nothing sent yet. */
  SynPending: 0,
  SynSent: 1,
  SynReceived: 2,
  Established: 3,
  FinWait1: 4,
  FinWait2: 5,
  CloseWait: 6,
  Closing: 7,
  LastAck: 8,
  TimeWait: 9,
  Closed: 10,
} as const;
export type TcpState = (typeof TcpState)[keyof typeof TcpState];

export const STATE_NAMES = [
  "SYN-PENDING",
  "SYN-SENT",
  "SYN-RECEIVED",
  "ESTABLISHED",
  "FIN-WAIT-1",
  "FIN-WAIT-2",
  "CLOSE-WAIT",
  "CLOSING",
  "LAST-ACK",
  "TIME-WAIT",
  "CLOSED",
] as const;

/** Why a connection ended, as the host side is told. */
export type CloseReason = "closed" | "reset" | "refused" | "timeout" | "aborted";

/** What the host side implements for each connection. */
export interface TcpHandler {
  /** The three-way handshake completed. */
  onEstablished(conn: TcpConnection): void;
  /**
   * In-order bytes from the guest, valid only during the call. Returns how
   * many the host took at once; the rest is kept in the receive buffer and
   * offered again through `conn.rx*` when the host calls `consumed`.
   * Only called while the receive buffer is empty, so order is kept.
   */
  onData(conn: TcpConnection, buf: Uint8Array, off: number, len: number): number;
  /** The receive buffer holds data the host should drain (after onData refused some). */
  onReadable(conn: TcpConnection): void;
  /** The guest closed its sending side (FIN); all its data has been delivered. */
  onPeerFin(conn: TcpConnection): void;
  /** The send buffer drained below its low-water mark: resume host reads. */
  onSendSpace(conn: TcpConnection): void;
  /**
   * The connection is gone (or in TIME-WAIT): release the host side. Called
   * once. After "closed" the receive buffer may still hold guest bytes the
   * host has not written yet: they stay readable through conn.rcvBuf and
   * consumed() until drained (onReadable is not called again).
   */
  onClosed(conn: TcpConnection, reason: CloseReason): void;
}

/** Tunables, shared by all connections of a stack. */
export interface TcpConfig {
  /** Receive buffer size: bounds the window we advertise (bytes). */
  rcvBuf: number;
  /** Send buffer soft limit: the host socket is paused above it. */
  sndBuf: number;
  /** Delayed-ACK timeout (ms). */
  delAckMs: number;
  /** Keepalive idle time, probe interval (ms) and probe count (see setKeepalive). */
  keepIdleMs: number;
  keepIntvlMs: number;
  keepCnt: number;
  /** Abort when data stays unacknowledged this long (TCP_USER_TIMEOUT, ms). */
  userTimeoutMs: number;
  /** Transmissions of our SYN (an open toward the guest, -L) before giving up. */
  synRetries: number;
  /** Transmissions of our SYN-ACK (answering a guest's SYN) before giving up. */
  synAckRetries: number;
  timeWaitMs: number;
  /** Connections in every state; beyond it new ones are refused (-max-tcp-connections). */
  maxConnections: number;
  /**
   * Guest handshakes at each of two stages: waiting for the host's
   * connect, and SYN-RECEIVED (-max-syn-received). Beyond it new SYNs
   * are dropped.
   */
  maxSynReceived: number;
  /** Bytes of send, receive and out-of-order storage of all connections together (-max-buffer-bytes; see budget.ts). */
  bufferBudget: number;
}

export const DEFAULT_TCP_CONFIG: TcpConfig = {
  rcvBuf: 1 << 20,
  sndBuf: 1 << 20,
  delAckMs: 40,
  keepIdleMs: 125_000,
  keepIntvlMs: 125_000,
  keepCnt: 4,
  userTimeoutMs: 625_000,
  // 8 SYNs at 0, 1, 3, 7, 15, 31, 63 and 123 s (the RTO doubles from 1 s
  // up to its 60 s cap): the open gives up after 183 s, the 3 minutes
  // RFC 9293 asks of R2 for a SYN (MUST-23). Linux gives up after 127 s.
  synRetries: 8,
  // A SYN-ACK only answers the guest's SYN, which the guest retransmits
  // itself (each copy draws a SYN-ACK at once): 6 tries, 63 s, as Linux's
  // tcp_synack_retries 5 (and fewer under a flood, below).
  synAckRetries: 6,
  timeWaitMs: 30_000,
  maxConnections: 16384,
  maxSynReceived: 1024,
  bufferBudget: 256 * 1024 * 1024,
};

/** The smallest window scale shift that lets `bytes` be advertised (RFC 7323 §2.3). */
export function shiftFor(bytes: number): number {
  let s = 0;
  while (s < 14 && 65535 * 2 ** s < bytes) s++;
  return s;
}

/** A timer that is off. */
export const NO_DEADLINE = Infinity;
