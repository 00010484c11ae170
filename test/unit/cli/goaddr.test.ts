// Go-style address printing (docs/compatibility.md, Addresses in log
// lines) and net.SplitHostPort.
import { describe, expect, test } from "bun:test";
import { formatHostPort, joinHostPort, splitHostPort } from "../../../src/cli/goaddr.ts";

describe("formatHostPort", () => {
  test.each([
    ["1.2.3.4", 80, "1.2.3.4:80"],
    ["127.0.0.1", 41234, "127.0.0.1:41234"],
    ["::1", 41234, "[::1]:41234"],
    ["::", 41234, "[::]:41234"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", 53, "[2001:db8::1]:53"],
    ["FD00::100", 22, "[fd00::100]:22"],
    ["fe80::1%eth0", 8, "[fe80::1%eth0]:8"],
    ["::ffff:1.2.3.4", 80, "1.2.3.4:80"],
    ["::ffff:7f00:1", 0, "127.0.0.1:0"],
    [null, 80, "<nil>"],
  ])("%p port %p", (ip, port, expected) => {
    expect(formatHostPort(ip, port)).toBe(expected);
  });
});

describe("joinHostPort", () => {
  test("brackets hosts with a colon", () => {
    expect(joinHostPort("::1", "53")).toBe("[::1]:53");
    expect(joinHostPort("localhost", "53")).toBe("localhost:53");
    expect(joinHostPort("", "80")).toBe(":80");
  });
});

describe("splitHostPort", () => {
  test.each([
    ["localhost:80", { host: "localhost", port: "80" }],
    ["127.0.0.1:0", { host: "127.0.0.1", port: "0" }],
    ["[::1]:8600", { host: "::1", port: "8600" }],
    ["[fe80::1%eth0]:53", { host: "fe80::1%eth0", port: "53" }],
    [":80", { host: "", port: "80" }],
    ["host:", { host: "host", port: "" }],
    ["[]:1", { host: "", port: "1" }],
  ])("%j", (text, expected) => {
    expect(splitHostPort(text)).toEqual(expected);
  });

  test.each([
    ["localhost", "address localhost: missing port in address"],
    ["::1:53", "address ::1:53: too many colons in address"],
    ["[::1", "address [::1: missing ']' in address"],
    ["[::1]", "address [::1]: missing port in address"],
    ["[::1]x:1", "address [::1]x:1: missing port in address"],
    ["[::1]:1:2", "address [::1]:1:2: too many colons in address"],
    ["a[b:1", "address a[b:1: unexpected '[' in address"],
    ["a]b:1", "address a]b:1: unexpected ']' in address"],
    ["[a]:1]", "address [a]:1]: unexpected ']' in address"],
  ])("%j fails", (text, message) => {
    expect(() => splitHostPort(text)).toThrow(message);
  });
});
