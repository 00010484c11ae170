// Go strconv.ParseUint / ParseInt / ParseBool, with Go's error values.
//
// Two places of upstream's output depend on them: the flag package maps
// their errors to `parse error` / `value out of range` for int and uint
// flags (docs/compatibility.md, Parsing rules), and forward-spec and
// allow/deny ports print the full NumError text, `strconv.ParseUint:
// parsing "X": invalid syntax` (Spec grammar, Firewall entries). The digit
// loop below follows Go's order of checks, so that "70000x" is a range
// error (the overflow is seen first) and "7x" a syntax error.
import { goQuote } from "../host/control/goquote.ts";

export type NumErrorKind = "invalid syntax" | "value out of range";

/** Go *strconv.NumError. */
export class GoNumError extends Error {
  constructor(
    readonly func: "ParseUint" | "ParseInt" | "ParseBool",
    readonly num: string,
    readonly kind: NumErrorKind,
  ) {
    super(`strconv.${func}: parsing ${goQuote(num)}: ${kind}`);
    this.name = "GoNumError";
  }
}

/**
 * Go strconv.ParseUint(text, base, bitSize). Base 0 means: a 0x, 0o, 0b
 * or bare 0 prefix picks the base, and underscores may separate digits.
 */
export function parseGoUint(text: string, base: number, bitSize: number): bigint {
  if (text === "") throw new GoNumError("ParseUint", text, "invalid syntax");
  const baseFromPrefix = base === 0;
  let digits = text;
  if (baseFromPrefix) {
    base = 10;
    if (text[0] === "0") {
      const marker = text.length >= 3 ? text[1]!.toLowerCase() : "";
      if (marker === "b") {
        base = 2;
        digits = text.slice(2);
      } else if (marker === "o") {
        base = 8;
        digits = text.slice(2);
      } else if (marker === "x") {
        base = 16;
        digits = text.slice(2);
      } else {
        base = 8;
        digits = text.slice(1);
      }
    }
  } else if (base < 2 || base > 36) {
    throw new RangeError(`parseGoUint: invalid base ${base}`);
  }

  const maxValue = (1n << BigInt(bitSize)) - 1n;
  const bigBase = BigInt(base);
  // Go's cutoff is computed for 64-bit arithmetic: the first n for which
  // n*base overflows a uint64.
  const cutoff = ((1n << 64n) - 1n) / bigBase + 1n;
  let value = 0n;
  let sawUnderscore = false;
  for (let i = 0; i < digits.length; i++) {
    const code = digits.charCodeAt(i);
    let digit: number;
    if (code === 0x5f && baseFromPrefix) {
      sawUnderscore = true;
      continue;
    } else if (code >= 0x30 && code <= 0x39) {
      digit = code - 0x30;
    } else {
      const lower = code | 0x20;
      if (lower >= 0x61 && lower <= 0x7a) digit = lower - 0x61 + 10;
      else throw new GoNumError("ParseUint", text, "invalid syntax");
    }
    if (digit >= base) throw new GoNumError("ParseUint", text, "invalid syntax");
    if (value >= cutoff) throw new GoNumError("ParseUint", text, "value out of range");
    value = value * bigBase + BigInt(digit);
    if (value > maxValue) throw new GoNumError("ParseUint", text, "value out of range");
  }
  if (sawUnderscore && !underscoresAreWellPlaced(text)) {
    throw new GoNumError("ParseUint", text, "invalid syntax");
  }
  return value;
}

/** Go strconv.ParseInt(text, base, bitSize). */
export function parseGoInt(text: string, base: number, bitSize: number): bigint {
  if (text === "") throw new GoNumError("ParseInt", text, "invalid syntax");
  let negative = false;
  let unsigned = text;
  if (text[0] === "+") {
    unsigned = text.slice(1);
  } else if (text[0] === "-") {
    negative = true;
    unsigned = text.slice(1);
  }
  let magnitude: bigint;
  try {
    magnitude = parseGoUint(unsigned, base, bitSize);
  } catch (error) {
    if (!(error instanceof GoNumError)) throw error;
    if (error.kind !== "value out of range") throw new GoNumError("ParseInt", text, error.kind);
    magnitude = 1n << 64n; // saturated: reported as out of range below
  }
  const cutoff = 1n << BigInt(bitSize - 1);
  if (!negative && magnitude >= cutoff) throw new GoNumError("ParseInt", text, "value out of range");
  if (negative && magnitude > cutoff) throw new GoNumError("ParseInt", text, "value out of range");
  return negative ? -magnitude : magnitude;
}

const TRUE_SPELLINGS = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const FALSE_SPELLINGS = new Set(["0", "f", "F", "FALSE", "false", "False"]);

/** Go strconv.ParseBool: its twelve spellings (docs/compatibility.md, Parsing rules). */
export function parseGoBool(text: string): boolean {
  if (TRUE_SPELLINGS.has(text)) return true;
  if (FALSE_SPELLINGS.has(text)) return false;
  throw new GoNumError("ParseBool", text, "invalid syntax");
}

/**
 * Go's underscoreOK: underscores only between digits (a base prefix counts
 * as a digit), never first or last.
 */
function underscoresAreWellPlaced(text: string): boolean {
  let saw = "^"; // ^ start, 0 digit or prefix, _ underscore, ! other
  let s = text;
  if (s.length >= 1 && (s[0] === "-" || s[0] === "+")) s = s.slice(1);
  let hex = false;
  let i = 0;
  if (s.length >= 2 && s[0] === "0") {
    const marker = s[1]!.toLowerCase();
    if (marker === "b" || marker === "o" || marker === "x") {
      i = 2;
      saw = "0";
      hex = marker === "x";
    }
  }
  for (; i < s.length; i++) {
    const c = s[i]!;
    const lower = c.toLowerCase();
    if ((c >= "0" && c <= "9") || (hex && lower >= "a" && lower <= "f")) {
      saw = "0";
      continue;
    }
    if (c === "_") {
      if (saw !== "0") return false;
      saw = "_";
      continue;
    }
    if (saw === "_") return false;
    saw = "!";
  }
  return saw !== "_";
}
