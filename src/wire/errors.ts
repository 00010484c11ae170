/**
 * Result codes shared by every view in src/wire/.
 *
 * attach() and the parsers return one of these numbers instead of throwing:
 * a malformed frame is ordinary input (the guest is untrusted), and the
 * caller only needs to count the reason and drop the frame. Plain numbers
 * keep the hot path free of allocation and exception machinery, and a
 * `const` object (not a TS `enum`) keeps the module valid under
 * verbatimModuleSyntax and in any JS engine.
 */
export const WireError = {
  /** Success. Always 0 so callers can write `if (err) drop()`. */
  Ok: 0,
  /** The buffer ends before the fixed part of the header. */
  Truncated: 1,
  /** Version field is not the one this view parses (IPv4 != 4, IPv6 != 6). */
  BadVersion: 2,
  /** A header-length field is below the minimum or runs past the packet (IPv4 IHL, TCP data offset). */
  BadHeaderLen: 3,
  /** A total/payload length field is below its minimum or larger than the bytes we have. */
  BadLength: 4,
  /** The checksum does not verify. */
  BadChecksum: 5,
  /** Structurally invalid in a way not covered above (e.g. an NDP option of length 0). */
  Malformed: 6,
  /** Well-formed but a variant we deliberately do not handle (ARP for non-Ethernet/IPv4, jumbograms). */
  Unsupported: 7,
  /** A TCP option list is malformed (option length < 2 or running past the header). */
  BadOption: 8,
  /** More IPv6 extension headers than the walker's hard cap. */
  TooManyExtensions: 9,
  /** The caller passed an (off, len) window that is not inside the buffer. */
  BadBounds: 10,
} as const;

export type WireError = (typeof WireError)[keyof typeof WireError];

const NAMES: readonly string[] = [
  "Ok",
  "Truncated",
  "BadVersion",
  "BadHeaderLen",
  "BadLength",
  "BadChecksum",
  "Malformed",
  "Unsupported",
  "BadOption",
  "TooManyExtensions",
  "BadBounds",
];

/** Human-readable name of a code, for counters and logs (cold path). */
export function wireErrorName(code: number): string {
  return code >= 0 && code < NAMES.length ? NAMES[code] : `WireError(${code})`;
}

/** True if `code` is one of the WireError values. Used by tests and assertions. */
export function isWireError(code: unknown): code is WireError {
  return typeof code === "number" && Number.isInteger(code) && code >= 0 && code < NAMES.length;
}

/**
 * Checks that the window [off, off+len) lies inside `buf` and that both are
 * non-negative integers. Every attach() starts with this so that a caller
 * bug (or a length computed from hostile fields) can never make a getter
 * read past the end of the typed array: such reads return `undefined`,
 * silently poison arithmetic with NaN, and deoptimise the surrounding code.
 */
export function inBounds(buf: Uint8Array, off: number, len: number): boolean {
  return (off | 0) === off && (len | 0) === len && off >= 0 && len >= 0 && off + len <= buf.length;
}

/** Shared empty buffer so fresh views hold a typed array of the right shape (monomorphic fields). */
export const EMPTY: Uint8Array = new Uint8Array(0);
