/**
 * Big-endian field access and byte copies shared by the views. Callers
 * have bounds-checked the offsets (views validate in attach()).
 */

export function readU16(buf: Uint8Array, off: number): number {
  return (buf[off] << 8) | buf[off + 1];
}

export function writeU16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 8;
  buf[off + 1] = v;
}

/** Big-endian uint32 read, normalised to a non-negative number (`>>> 0`). */
export function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off] << 24) | (buf[off + 1] << 16) | (buf[off + 2] << 8) | buf[off + 3]) >>> 0;
}

export function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24;
  buf[off + 1] = v >>> 16;
  buf[off + 2] = v >>> 8;
  buf[off + 3] = v;
}

/**
 * memmove: copies n bytes src[srcOff..] to dst[dstOff..], correct when the
 * two ranges overlap in the same backing store (e.g. quoting a packet into
 * an error message built in the same receive buffer).
 */
export function copyBytes(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, n: number): void {
  if (n <= 0) return;
  if (dst.buffer === src.buffer) {
    const rel = src.byteOffset - dst.byteOffset + srcOff; // src start in dst's coordinates
    if (rel >= 0 && rel + n <= dst.length) {
      dst.copyWithin(dstOff, rel, rel + n);
    } else {
      dst.set(src.slice(srcOff, srcOff + n), dstOff); // rare: views that only partly overlap
    }
    return;
  }
  if (n < 64) {
    // Short copies: a loop beats creating a subarray view.
    for (let i = 0; i < n; i++) dst[dstOff + i] = src[srcOff + i];
  } else {
    dst.set(src.subarray(srcOff, srcOff + n), dstOff);
  }
}
