// Go time.ParseDuration and time.Duration.String.
//
// `-dns-ttl` is a Go duration flag (docs/compatibility.md, Durations):
// `300ms`, `1m30s`, a bare `0`, units ns us µs μs ms s m h, fractions and a
// sign. The flag only ever shows `parse error`, but the full Go messages
// are kept here so the parser can be tested against Go's own. The
// formatter renders the usage default, `(default 5s)`.
//
// Internally durations are nanoseconds as a bigint, exactly as Go's int64;
// the public API also offers milliseconds as a (possibly fractional) number.

const UNIT_NANOSECONDS: ReadonlyMap<string, bigint> = new Map([
  ["ns", 1n],
  ["us", 1_000n],
  ["\u00b5s", 1_000n], // U+00B5 MICRO SIGN
  ["\u03bcs", 1_000n], // U+03BC GREEK SMALL LETTER MU
  ["ms", 1_000_000n],
  ["s", 1_000_000_000n],
  ["m", 60_000_000_000n],
  ["h", 3_600_000_000_000n],
]);

const TWO_POW_63 = 1n << 63n;

export class GoDurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "GoDurationError";
  }
}

/** Go time.ParseDuration, in nanoseconds. Throws GoDurationError with Go's text. */
export function parseGoDurationNs(text: string): bigint {
  const invalid = () => new GoDurationError("time: invalid duration " + timeQuote(text));
  let s = text;
  let negative = false;
  if (s !== "" && (s[0] === "-" || s[0] === "+")) {
    negative = s[0] === "-";
    s = s.slice(1);
  }
  if (s === "0") return 0n;
  if (s === "") throw invalid();

  let total = 0n;
  while (s !== "") {
    if (!(s[0] === "." || isDigit(s[0]!))) throw invalid();

    const integer = leadingInt(s);
    if (integer === null) throw invalid();
    const consumedBeforePoint = integer.rest.length !== s.length;
    s = integer.rest;

    let fraction = 0n;
    let scale = 1;
    let consumedAfterPoint = false;
    if (s !== "" && s[0] === ".") {
      s = s.slice(1);
      const before = s.length;
      const parsed = leadingFraction(s);
      fraction = parsed.value;
      scale = parsed.scale;
      s = parsed.rest;
      consumedAfterPoint = before !== s.length;
    }
    if (!consumedBeforePoint && !consumedAfterPoint) throw invalid();

    let unitEnd = 0;
    while (unitEnd < s.length && s[unitEnd] !== "." && !isDigit(s[unitEnd]!)) unitEnd++;
    if (unitEnd === 0) throw new GoDurationError("time: missing unit in duration " + timeQuote(text));
    const unitText = s.slice(0, unitEnd);
    s = s.slice(unitEnd);
    const unit = UNIT_NANOSECONDS.get(unitText);
    if (unit === undefined) {
      throw new GoDurationError(
        "time: unknown unit " + timeQuote(unitText) + " in duration " + timeQuote(text),
      );
    }
    let value = integer.value;
    if (value > TWO_POW_63 / unit) throw invalid();
    value *= unit;
    if (fraction > 0n) {
      // Go computes the fractional part in float64, then truncates.
      value += BigInt(Math.trunc(Number(fraction) * (Number(unit) / scale)));
      if (value > TWO_POW_63) throw invalid();
    }
    total += value;
    if (total > TWO_POW_63) throw invalid();
  }
  if (negative) return -total;
  if (total > TWO_POW_63 - 1n) throw invalid();
  return total;
}

/** Go time.ParseDuration, in milliseconds (fractions kept). */
export function parseGoDuration(text: string): number {
  return nanosecondsToMilliseconds(parseGoDurationNs(text));
}

export function nanosecondsToMilliseconds(ns: bigint): number {
  const whole = ns / 1_000_000n;
  const rest = ns % 1_000_000n;
  return Number(whole) + Number(rest) / 1e6;
}

export function millisecondsToNanoseconds(ms: number): bigint {
  const whole = Math.trunc(ms);
  return BigInt(whole) * 1_000_000n + BigInt(Math.round((ms - whole) * 1e6));
}

/** Go time.Duration.String: "5s", "1m30s", "300ms", "1.5µs", "0s", "1h0m0s". */
export function formatGoDurationNs(ns: bigint): string {
  const negative = ns < 0n;
  let u = negative ? -ns : ns;
  let out: string;
  if (u < 1_000_000_000n) {
    if (u === 0n) return "0s";
    let precision: number;
    let unit: string;
    if (u < 1_000n) {
      precision = 0;
      unit = "ns";
    } else if (u < 1_000_000n) {
      precision = 3;
      unit = "\u00b5s";
    } else {
      precision = 6;
      unit = "ms";
    }
    const { fraction, integer } = splitFraction(u, precision);
    out = integer.toString() + fraction + unit;
  } else {
    const { fraction, integer } = splitFraction(u, 9);
    u = integer;
    out = (u % 60n).toString() + fraction + "s";
    u /= 60n;
    if (u > 0n) {
      out = (u % 60n).toString() + "m" + out;
      u /= 60n;
      if (u > 0n) out = u.toString() + "h" + out;
    }
  }
  return negative ? "-" + out : out;
}

/** Go time.Duration.String for a duration given in milliseconds. */
export function formatGoDuration(ms: number): string {
  return formatGoDurationNs(millisecondsToNanoseconds(ms));
}

/** Go's fmtFrac: ".12345" without trailing zeros (or ""), and value / 10**precision. */
function splitFraction(value: bigint, precision: number): { fraction: string; integer: bigint } {
  let digits = "";
  let printing = false;
  for (let i = 0; i < precision; i++) {
    const digit = value % 10n;
    printing = printing || digit !== 0n;
    if (printing) digits = digit.toString() + digits;
    value /= 10n;
  }
  return { fraction: printing ? "." + digits : "", integer: value };
}

function isDigit(c: string): boolean {
  return c >= "0" && c <= "9";
}

/** Go's leadingInt: the leading decimal digits, or null on overflow. */
function leadingInt(s: string): { value: bigint; rest: string } | null {
  let i = 0;
  let value = 0n;
  for (; i < s.length && isDigit(s[i]!); i++) {
    if (value > TWO_POW_63 / 10n) return null;
    value = value * 10n + BigInt(s.charCodeAt(i) - 0x30);
    if (value > TWO_POW_63) return null;
  }
  return { value, rest: s.slice(i) };
}

/** Go's leadingFraction: digits after the point; overflowing digits are skipped. */
function leadingFraction(s: string): { value: bigint; scale: number; rest: string } {
  let i = 0;
  let value = 0n;
  let scale = 1;
  let overflow = false;
  for (; i < s.length && isDigit(s[i]!); i++) {
    if (overflow) continue;
    if (value > (TWO_POW_63 - 1n) / 10n) {
      overflow = true;
      continue;
    }
    const next = value * 10n + BigInt(s.charCodeAt(i) - 0x30);
    if (next > TWO_POW_63) {
      overflow = true;
      continue;
    }
    value = next;
    scale *= 10;
  }
  return { value, scale, rest: s.slice(i) };
}

/**
 * The time package's own quote (not strconv.Quote): bytes outside
 * printable ASCII are written as \xNN.
 */
function timeQuote(text: string): string {
  const bytes = new TextEncoder().encode(text);
  let out = '"';
  for (const byte of bytes) {
    if (byte >= 0x80 || byte < 0x20) {
      out += "\\x" + byte.toString(16).padStart(2, "0");
    } else {
      if (byte === 0x22 || byte === 0x5c) out += "\\";
      out += String.fromCharCode(byte);
    }
  }
  return out + '"';
}
