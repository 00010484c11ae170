// Go %q (strconv.Quote) as used in flag errors (docs/compatibility.md, Error messages).
import { describe, expect, test } from "bun:test";
import { goQuote, isGoPrintable } from "../../../src/host/control/goquote.ts";

describe("goQuote", () => {
  test.each([
    ["", '""'],
    ["abc", '"abc"'],
    // Printable Unicode stays raw UTF-8, as in Go.
    ["notahostó", '"notahostó"'],
    ["日本語", '"日本語"'],
    ["\u{1F600}", '"\u{1F600}"'],
    ["\ufffd", '"\ufffd"'],
    // Quote and backslash are escaped.
    ['a"b', '"a\\"b"'],
    ["a\\b", '"a\\\\b"'],
    ["'", `"'"`],
    // C escapes.
    ["\x07\b\f\n\r\t\v", '"\\a\\b\\f\\n\\r\\t\\v"'],
    // Other control characters and DEL as \xNN.
    ["\x00", '"\\x00"'],
    ["\x1b", '"\\x1b"'],
    ["\x7f", '"\\x7f"'],
    // Non-printable runes below U+10000 as \uNNNN, above as \UNNNNNNNN.
    ["\u0080", '"\\u0080"'],
    ["\u00a0", '"\\u00a0"'],
    ["\u200b", '"\\u200b"'],
    ["\u2028", '"\\u2028"'],
    ["\u{e0001}", '"\\U000e0001"'],
    // A lone surrogate is three invalid bytes for Go.
    ["\ud800", '"\\xed\\xa0\\x80"'],
  ])("%j", (input, expected) => {
    expect(goQuote(input)).toBe(expected);
  });

  test("invalid UTF-8 bytes become \\xNN", () => {
    expect(goQuote(Uint8Array.from([0x61, 0xff, 0x62]))).toBe('"a\\xffb"');
    expect(goQuote(Uint8Array.from([0xc3]))).toBe('"\\xc3"'); // truncated sequence
    expect(goQuote(Uint8Array.from([0xc0, 0xaf]))).toBe('"\\xc0\\xaf"'); // overlong
    expect(goQuote(Uint8Array.from([0xc3, 0xb3]))).toBe('"ó"');
  });

  test("isGoPrintable follows unicode.IsPrint", () => {
    expect(isGoPrintable(0x20)).toBe(true);
    expect(isGoPrintable(0x41)).toBe(true);
    expect(isGoPrintable(0x3000)).toBe(false); // ideographic space: a space, not ASCII
    expect(isGoPrintable(0x0301)).toBe(true); // combining mark
  });
});
