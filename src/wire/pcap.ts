/**
 * Classic libpcap capture format (not pcapng), the pieces a writer needs.
 * https://www.tcpdump.org/manpages/pcap-savefile.5.html
 *
 * We write big-endian: readers detect the byte order from the magic
 * number, so either order is valid, and big-endian keeps every multi-byte
 * write in src/wire/ network order (except virtio_net_hdr).
 *
 * File header (24 bytes):
 *   magic 0xa1b2c3d4 (microsecond timestamps) | version 2.4 |
 *   thiszone 0 | sigfigs 0 | snaplen | linktype
 * Record header (16 bytes), followed by capLen bytes of packet:
 *   ts_sec | ts_usec | incl_len (capLen) | orig_len
 */
import { writeU16, writeU32 } from "./bytes.ts";

export const PCAP_MAGIC = 0xa1b2c3d4;
export const PCAP_VERSION_MAJOR = 2;
export const PCAP_VERSION_MINOR = 4;
export const PCAP_FILE_HEADER_LEN = 24;
export const PCAP_RECORD_HEADER_LEN = 16;

/** Ethernet frames (with 14-byte header). */
export const LINKTYPE_ETHERNET = 1;
/** Raw IP packets, version from the first nibble. */
export const LINKTYPE_RAW = 101;

/** The 24-byte file header. Allocates (once per capture file). */
export function pcapFileHeader(snaplen: number, linktype: number = LINKTYPE_RAW): Uint8Array {
  const h = new Uint8Array(PCAP_FILE_HEADER_LEN);
  writeU32(h, 0, PCAP_MAGIC);
  writeU16(h, 4, PCAP_VERSION_MAJOR);
  writeU16(h, 6, PCAP_VERSION_MINOR);
  writeU32(h, 8, 0); // thiszone: timestamps are UTC
  writeU32(h, 12, 0); // sigfigs: always 0 in practice
  writeU32(h, 16, snaplen);
  writeU32(h, 20, linktype);
  return h;
}

/**
 * Writes a 16-byte record header at out[off]; returns 16. capLen is the
 * number of bytes that follow (at most snaplen), origLen the packet's real
 * length.
 */
export function writePcapRecordHeader(
  out: Uint8Array,
  off: number,
  tsSec: number,
  tsUsec: number,
  capLen: number,
  origLen: number,
): number {
  writeU32(out, off, tsSec);
  writeU32(out, off + 4, tsUsec);
  writeU32(out, off + 8, capLen);
  writeU32(out, off + 12, origLen);
  return PCAP_RECORD_HEADER_LEN;
}
