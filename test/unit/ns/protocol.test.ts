// The helper's JSON reports (src/ns/protocol.ts).
import { expect, test } from "bun:test";
import { SysError } from "../../../ffi/libc.ts";
import { decodeMessage, encodeMessage, errorReport, sysErrorDetail, type HelperMessage } from "../../../src/ns/protocol.ts";

test("every message round-trips", () => {
  const all: HelperMessage[] = [
    { t: "started" },
    { t: "opening" },
    { t: "device", kind: "tap", mtu: 65520, vnetHdr: true, offloads: 103 },
    { t: "error", step: "open", call: "open", errno: 13, detail: "/dev/net/tun" },
    { t: "error", step: "exec", call: "execve", errno: 2, detail: "x", command: "x" },
  ];
  for (const m of all) expect(decodeMessage(encodeMessage(m))).toEqual(m);
});

test("anything else is rejected", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  for (const s of [
    "",
    "not json",
    "null",
    "[]",
    '{"t":"nope"}',
    '{"t":"device","kind":"eth","mtu":1,"vnetHdr":false,"offloads":0}',
    '{"t":"device","kind":"tap","mtu":"1500","vnetHdr":false,"offloads":0}',
    '{"t":"error","step":"bogus","call":"x","errno":1}',
    '{"t":"error","step":"open","call":"x"}',
  ]) {
    expect(decodeMessage(enc(s))).toBe(null);
  }
});

test("errorReport keeps call, errno and detail of a SysError", () => {
  const e = new SysError("open", 13, "/dev/net/tun");
  expect(sysErrorDetail(e)).toBe("/dev/net/tun");
  expect(sysErrorDetail(new SysError("setns", 1))).toBe(undefined);
  expect(errorReport("open", e)).toEqual({ t: "error", step: "open", call: "open", errno: 13, detail: "/dev/net/tun" });
  expect(errorReport("setup", new Error("boom"))).toEqual({ t: "error", step: "setup", call: "helper", errno: 5, detail: "boom" });
});
