/**
 * Base of the reusable packet views in src/wire/.
 *
 * A view copies nothing: it is a window (buf, off, len) over a packet that
 * attach() validates once, after which the accessors read and write the
 * buffer in place. One view object serves every packet, so the hot path
 * allocates nothing. The field helpers take offsets relative to `off`, use
 * network byte order, and rely on attach() (or a trusted wrap()) having
 * put the fixed header inside the window.
 */
import { EMPTY, inBounds } from "./errors.ts";

export abstract class View {
  buf: Uint8Array = EMPTY;
  /** Offset of the first header byte. */
  off = 0;
  len = 0;

  /** Points the view at a packet we are building; no validation (trusted input only). */
  wrap(buf: Uint8Array, off: number, len: number): this {
    this.buf = buf;
    this.off = off;
    this.len = len;
    return this;
  }

  /**
   * How attach(buf, off, len) starts: if the window buf[off, off+len) lies inside
   * `buf`, the view takes it and the result is true; otherwise the view is
   * left as it was (the caller returns BadBounds).
   */
  protected point(buf: Uint8Array, off: number, len: number): boolean {
    if (!inBounds(buf, off, len)) return false;
    this.buf = buf;
    this.off = off;
    this.len = len;
    return true;
  }

  // Written out instead of calling bytes.ts: the stack runs without
  // JavaScriptCore's FTL tier, where one more call level per field access
  // measurably slows every packet.
  protected u8(at: number): number {
    return this.buf[this.off + at];
  }
  protected w8(at: number, v: number): void {
    this.buf[this.off + at] = v;
  }
  protected u16(at: number): number {
    const b = this.buf;
    const o = this.off + at;
    return (b[o] << 8) | b[o + 1];
  }
  protected w16(at: number, v: number): void {
    const b = this.buf;
    const o = this.off + at;
    b[o] = v >>> 8;
    b[o + 1] = v;
  }
  protected u32(at: number): number {
    const b = this.buf;
    const o = this.off + at;
    return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
  }
  protected w32(at: number, v: number): void {
    const b = this.buf;
    const o = this.off + at;
    b[o] = v >>> 24;
    b[o + 1] = v >>> 16;
    b[o + 2] = v >>> 8;
    b[o + 3] = v;
  }
}
