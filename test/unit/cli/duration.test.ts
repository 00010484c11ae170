// Go time.ParseDuration and Duration.String (-dns-ttl; docs/compatibility.md, Durations).
import { describe, expect, test } from "bun:test";
import {
  formatGoDuration,
  formatGoDurationNs,
  parseGoDuration,
  parseGoDurationNs,
} from "../../../src/cli/duration.ts";

const S = 1_000_000_000n;
const MS = 1_000_000n;
const US = 1_000n;
const M = 60n * S;
const H = 60n * M;

describe("parseGoDurationNs accepts what Go accepts", () => {
  test.each([
    ["0", 0n],
    ["5s", 5n * S],
    ["30s", 30n * S],
    ["1478s", 1478n * S],
    ["-5s", -5n * S],
    ["+5s", 5n * S],
    ["-0", 0n],
    ["+0", 0n],
    ["5.0s", 5n * S],
    ["5.6s", 5n * S + 600n * MS],
    ["5.s", 5n * S],
    [".5s", 500n * MS],
    ["1.0s", S],
    ["1.004s", S + 4n * MS],
    ["100.00100s", 100n * S + MS],
    ["10ns", 10n],
    ["11us", 11n * US],
    ["12\u00b5s", 12n * US],
    ["12\u03bcs", 12n * US],
    ["13ms", 13n * MS],
    ["14s", 14n * S],
    ["15m", 15n * M],
    ["16h", 16n * H],
    ["3h30m", 3n * H + 30n * M],
    ["10.5s4m", 4n * M + 10n * S + 500n * MS],
    ["-2m3.4s", -(2n * M + 3n * S + 400n * MS)],
    ["1h2m3s4ms5us6ns", H + 2n * M + 3n * S + 4n * MS + 5n * US + 6n],
    ["39h9m14.425s", 39n * H + 9n * M + 14n * S + 425n * MS],
    ["52763797000ns", 52763797000n],
    ["0.3333333333333333333h", 20n * M],
    ["9007199254740993ns", 9007199254740993n],
    ["9223372036854775807ns", 9223372036854775807n],
    ["9223372036854775.807us", 9223372036854775807n],
    ["9223372036s854ms775us807ns", 9223372036854775807n],
    ["-9223372036854775808ns", -9223372036854775808n],
    ["-9223372036854775.808us", -9223372036854775808n],
    ["-2562047h47m16.854775808s", -9223372036854775808n],
    ["0.100000000000000000000h", 6n * M],
    ["0.830103483285477580700h", 49n * M + 48n * S + 372539827n],
  ])("%j", (text, expected) => {
    expect(parseGoDurationNs(text)).toBe(expected);
  });
});

describe("parseGoDurationNs rejects what Go rejects, with Go's text", () => {
  test.each([
    ["", 'time: invalid duration ""'],
    ["3", 'time: missing unit in duration "3"'],
    ["-", 'time: invalid duration "-"'],
    ["s", 'time: invalid duration "s"'],
    [".", 'time: invalid duration "."'],
    ["-.", 'time: invalid duration "-."'],
    [".s", 'time: invalid duration ".s"'],
    ["+.s", 'time: invalid duration "+.s"'],
    ["1d", 'time: unknown unit "d" in duration "1d"'],
    ["1S", 'time: unknown unit "S" in duration "1S"'],
    ["1µ", 'time: unknown unit "\\xc2\\xb5" in duration "1\\xc2\\xb5"'],
    ["9223372036854775808ns", 'time: invalid duration "9223372036854775808ns"'],
    ["9223372036854775.808us", 'time: invalid duration "9223372036854775.808us"'],
    ["-9223372036854775809ns", 'time: invalid duration "-9223372036854775809ns"'],
    ["1s 2s", 'time: unknown unit "s " in duration "1s 2s"'],
  ])("%j", (text, message) => {
    expect(() => parseGoDurationNs(text)).toThrow(message);
  });
});

describe("parseGoDuration in milliseconds", () => {
  test.each([
    ["5s", 5000],
    ["300ms", 300],
    ["1m30s", 90000],
    ["0", 0],
    ["1.5us", 0.0015],
    ["1ns", 0.000001],
  ])("%j", (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9);
  });
});

describe("formatGoDurationNs is Go's Duration.String", () => {
  test.each([
    [0n, "0s"],
    [1n, "1ns"],
    [1100n, "1.1\u00b5s"],
    [2200n * US, "2.2ms"],
    [3300n * MS, "3.3s"],
    [4n * M + 5n * S, "4m5s"],
    [4n * M + 5001n * MS, "4m5.001s"],
    [5n * H + 6n * M + 7001n * MS, "5h6m7.001s"],
    [8n * M + 1n, "8m0.000000001s"],
    [H, "1h0m0s"],
    [9223372036854775807n, "2562047h47m16.854775807s"],
    [-9223372036854775808n, "-2562047h47m16.854775808s"],
    [-1500n * MS, "-1.5s"],
  ])("%p", (ns, text) => {
    expect(formatGoDurationNs(ns)).toBe(text);
  });

  test.each([
    [5000, "5s"],
    [300, "300ms"],
    [90000, "1m30s"],
    [0.0015, "1.5\u00b5s"],
    [0, "0s"],
  ])("formatGoDuration(%p ms)", (ms, text) => {
    expect(formatGoDuration(ms)).toBe(text);
  });
});
