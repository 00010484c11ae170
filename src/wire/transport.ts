/**
 * What the TCP and UDP views share: both headers start with the source and
 * destination ports, and both checksums cover an IP pseudo header, the
 * header and the data (RFC 9293 §3.1, RFC 768, RFC 8200 §8.1).
 */
import { finish, pseudoHeaderV4, pseudoHeaderV6, sum16 } from "./checksum.ts";
import { View } from "./view.ts";

export abstract class TransportView extends View {
  get srcPort(): number {
    return this.u16(0);
  }
  set srcPort(v: number) {
    this.w16(0, v);
  }
  get dstPort(): number {
    return this.u16(2);
  }
  set dstPort(v: number) {
    this.w16(2, v);
  }

  /** Folded complement of the sum over all `len` bytes and the IPv4 pseudo header: 0 when a stored checksum verifies. */
  protected checksumV4(src: number, dst: number, proto: number): number {
    return finish(sum16(this.buf, this.off, this.len, pseudoHeaderV4(src, dst, proto, this.len)));
  }

  /** As checksumV4 with the IPv6 pseudo header (addresses are 16 bytes at addrBuf[srcOff] / addrBuf[dstOff]). */
  protected checksumV6(addrBuf: Uint8Array, srcOff: number, dstOff: number, proto: number): number {
    return finish(sum16(this.buf, this.off, this.len, pseudoHeaderV6(addrBuf, srcOff, dstOff, proto, this.len)));
  }
}
