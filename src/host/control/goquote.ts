// Go's `%q` verb for strings (strconv.Quote).
//
// Upstream prints flag values and names the way Go's fmt does: in flag
// errors (`invalid value "V" for flag -NAME: ERR`), forward-spec errors
// (`unknown network type "X"`) and lookup errors (`Failed to lookup SRV
// "QUERY" ...`); docs/compatibility.md gives each line.
// Go quotes byte strings: printable Unicode stays as is (so "notahostó"
// keeps its raw UTF-8), the usual C escapes are used, other runes become
// \uNNNN or \UNNNNNNNN, and bytes that are not valid UTF-8 become \xNN.
//
// A JavaScript string cannot hold invalid UTF-8, but it can hold lone
// surrogates; we encode those as the 3-byte sequence a lax encoder would
// emit (WTF-8), which Go's decoder then rejects byte by byte, exactly as Go
// would treat the same bytes coming from argv.

const LOWER_HEX = "0123456789abcdef";

/** Go strconv.Quote: a double-quoted Go string literal for `text`. */
export function goQuote(text: string | Uint8Array): string {
  const bytes = typeof text === "string" ? encodeWtf8(text) : text;
  let out = '"';
  let offset = 0;
  while (offset < bytes.length) {
    const { rune, width } = decodeRune(bytes, offset);
    if (rune === RUNE_ERROR && width === 1) {
      out += "\\x" + hexByte(bytes[offset]!);
    } else {
      out += escapeRune(rune);
    }
    offset += width;
  }
  return out + '"';
}

/** Go unicode.IsPrint: letters, marks, numbers, punctuation, symbols and ASCII space. */
export function isGoPrintable(rune: number): boolean {
  if (rune === 0x20) return true;
  if (rune < 0x20 || rune === 0x7f) return false;
  return PRINTABLE.test(String.fromCodePoint(rune));
}

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;
const RUNE_ERROR = 0xfffd;

function escapeRune(rune: number): string {
  if (rune === 0x22 || rune === 0x5c) return "\\" + String.fromCodePoint(rune);
  if (isGoPrintable(rune)) return String.fromCodePoint(rune);
  switch (rune) {
    case 0x07:
      return "\\a";
    case 0x08:
      return "\\b";
    case 0x0c:
      return "\\f";
    case 0x0a:
      return "\\n";
    case 0x0d:
      return "\\r";
    case 0x09:
      return "\\t";
    case 0x0b:
      return "\\v";
  }
  if (rune < 0x20 || rune === 0x7f) return "\\x" + hexByte(rune);
  if (rune < 0x10000) return "\\u" + rune.toString(16).padStart(4, "0");
  return "\\U" + rune.toString(16).padStart(8, "0");
}

function hexByte(value: number): string {
  return LOWER_HEX[(value >> 4) & 0xf]! + LOWER_HEX[value & 0xf]!;
}

/** UTF-8 encoding that keeps lone surrogates as 3-byte sequences (WTF-8). */
export function encodeWtf8(text: string): Uint8Array {
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (code < 0x80) {
      out.push(code);
    } else if (code < 0x800) {
      out.push(0xc0 | (code >> 6), 0x80 | (code & 0x3f));
    } else if (code < 0x10000) {
      out.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f));
    } else {
      out.push(
        0xf0 | (code >> 18),
        0x80 | ((code >> 12) & 0x3f),
        0x80 | ((code >> 6) & 0x3f),
        0x80 | (code & 0x3f),
      );
    }
  }
  return Uint8Array.from(out);
}

/**
 * Go utf8.DecodeRune: one rune and its width; (RUNE_ERROR, 1) for any
 * invalid, overlong, surrogate or truncated sequence.
 */
export function decodeRune(bytes: Uint8Array, offset: number): { rune: number; width: number } {
  const b0 = bytes[offset]!;
  if (b0 < 0x80) return { rune: b0, width: 1 };
  const invalid = { rune: RUNE_ERROR, width: 1 };
  let need: number;
  let low = 0x80;
  let high = 0xbf;
  let rune: number;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    need = 1;
    rune = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    rune = b0 & 0x0f;
    if (b0 === 0xe0) low = 0xa0; // no overlong forms
    if (b0 === 0xed) high = 0x9f; // no surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    rune = b0 & 0x07;
    if (b0 === 0xf0) low = 0x90; // no overlong forms
    if (b0 === 0xf4) high = 0x8f; // nothing above U+10FFFF
  } else {
    return invalid;
  }
  if (offset + need >= bytes.length) return invalid; // truncated sequence
  for (let k = 1; k <= need; k++) {
    const b = bytes[offset + k]!;
    const lo = k === 1 ? low : 0x80;
    const hi = k === 1 ? high : 0xbf;
    if (b < lo || b > hi) return invalid;
    rune = (rune << 6) | (b & 0x3f);
  }
  return { rune, width: need + 1 };
}
