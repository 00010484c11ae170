// Go strconv.ParseUint / ParseInt / ParseBool, as flags, forward specs and
// firewall entries use them (docs/compatibility.md).
import { describe, expect, test } from "bun:test";
import { GoNumError, parseGoBool, parseGoInt, parseGoUint } from "../../../src/cli/gostrconv.ts";

function outcome(parse: () => bigint): bigint | string {
  try {
    return parse();
  } catch (error) {
    if (error instanceof GoNumError) return error.message;
    throw error;
  }
}

describe("parseGoUint base 10, 16 bits (ports)", () => {
  test.each([
    ["0", 0n],
    ["80", 80n],
    ["65535", 65535n],
    ["00080", 80n],
    ["65536", 'strconv.ParseUint: parsing "65536": value out of range'],
    ["99999999999999999999999", 'strconv.ParseUint: parsing "99999999999999999999999": value out of range'],
    // Go sees the overflow before the bad character.
    ["70000x", 'strconv.ParseUint: parsing "70000x": value out of range'],
    ["7x", 'strconv.ParseUint: parsing "7x": invalid syntax'],
    ["", 'strconv.ParseUint: parsing "": invalid syntax'],
    ["a", 'strconv.ParseUint: parsing "a": invalid syntax'],
    ["-1", 'strconv.ParseUint: parsing "-1": invalid syntax'],
    ["+1", 'strconv.ParseUint: parsing "+1": invalid syntax'],
    ["1_0", 'strconv.ParseUint: parsing "1_0": invalid syntax'],
    ["0x10", 'strconv.ParseUint: parsing "0x10": invalid syntax'],
    [" 1", 'strconv.ParseUint: parsing " 1": invalid syntax'],
    ["ó", 'strconv.ParseUint: parsing "ó": invalid syntax'],
  ])("%j", (text, expected) => {
    expect(outcome(() => parseGoUint(text, 10, 16))).toBe(expected);
  });
});

describe("parseGoUint base 0, 64 bits (uint flags)", () => {
  test.each([
    ["0", 0n],
    ["1500", 1500n],
    ["0x5dc", 1500n],
    ["0X5DC", 1500n],
    ["0o17", 15n],
    ["017", 15n],
    ["0b101", 5n],
    ["1_000", 1000n],
    ["0x_1f", 31n],
    ["0_1", 1n],
    ["18446744073709551615", 18446744073709551615n],
    ["18446744073709551616", "value out of range"],
    ["_1", "invalid syntax"],
    ["1_", "invalid syntax"],
    ["1__0", "invalid syntax"],
    ["08", "invalid syntax"],
    ["0x", "invalid syntax"],
    ["0b", "invalid syntax"],
    ["0b2", "invalid syntax"],
  ])("%j", (text, expected) => {
    const result = outcome(() => parseGoUint(text, 0, 64));
    if (typeof expected === "bigint") expect(result).toBe(expected);
    else expect(result).toBe(`strconv.ParseUint: parsing ${JSON.stringify(text)}: ${expected}`);
  });
});

describe("parseGoInt base 0, 64 bits (int flags)", () => {
  test.each([
    ["-1", -1n],
    ["+7", 7n],
    ["-0x10", -16n],
    ["9223372036854775807", 9223372036854775807n],
    ["-9223372036854775808", -9223372036854775808n],
    ["-0x8000000000000000", -9223372036854775808n],
    ["9223372036854775808", "value out of range"],
    ["-9223372036854775809", "value out of range"],
    ["99999999999999999999", "value out of range"],
    ["--1", "invalid syntax"],
    ["-", "invalid syntax"],
    ["", "invalid syntax"],
    ["1.5", "invalid syntax"],
  ])("%j", (text, expected) => {
    const result = outcome(() => parseGoInt(text, 0, 64));
    if (typeof expected === "bigint") expect(result).toBe(expected);
    else expect(result).toBe(`strconv.ParseInt: parsing ${JSON.stringify(text)}: ${expected}`);
  });
});

describe("parseGoBool", () => {
  test.each(["1", "t", "T", "true", "TRUE", "True"])("%s is true", (text) => {
    expect(parseGoBool(text)).toBe(true);
  });
  test.each(["0", "f", "F", "false", "FALSE", "False"])("%s is false", (text) => {
    expect(parseGoBool(text)).toBe(false);
  });
  test.each(["", "yes", "tRUE", "2", " true"])("%j is an error", (text) => {
    expect(() => parseGoBool(text)).toThrow(GoNumError);
  });
});
