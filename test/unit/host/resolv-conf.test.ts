// The DNS forwarder's view of resolv.conf: re-read on change, and never
// stuck on the 127.0.0.1 fallback because of one failed or half-written read.
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatIP } from "../../../src/wire/addr.ts";
import { RETRY_MS, ResolvConf, SETTLE_MS, parseResolvConf, parseResolvSearch } from "../../../src/host/control/resolv-conf.ts";

let dir = "";
let path = "";
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "resolv-"));
  path = join(dir, "resolv.conf");
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const names = (r: ResolvConf, now: number): string[] => r.servers(now).map(formatIP);

/** Writes the file and sets its mtime to `ageMs` ago. */
function write(text: string, ageMs: number): void {
  writeFileSync(path, text);
  const t = (Date.now() - ageMs) / 1000;
  utimesSync(path, t, t);
}

describe("parseResolvConf", () => {
  test("nameserver lines only, comments and zones dropped", () => {
    const ips = parseResolvConf("# x\nnameserver 192.0.2.1 ; c\nsearch a\nnameserver fe80::1%eth0\nnameserver bogus\n");
    expect(ips.map(formatIP)).toEqual(["192.0.2.1", "fe80::1"]);
  });
});

describe("parseResolvSearch", () => {
  test("the last search or domain line wins; dots, case, duplicates and comments cleaned", () => {
    expect(parseResolvSearch("nameserver 192.0.2.1\nsearch Eng.Example.com. example.com eng.example.com # x\n")).toEqual(["eng.example.com", "example.com"]);
    expect(parseResolvSearch("search a.example b.example\ndomain c.example\n")).toEqual(["c.example"]);
    expect(parseResolvSearch("domain c.example\nsearch a.example b.example\n")).toEqual(["a.example", "b.example"]);
    expect(parseResolvSearch("search .\n")).toEqual([]);
    expect(parseResolvSearch("nameserver 192.0.2.1\n")).toEqual([]);
  });
});

describe("ResolvConf", () => {
  test("search domains come with the servers and change with the file", () => {
    write("nameserver 192.0.2.1\nsearch a.example\n", 60_000);
    const r = new ResolvConf(path);
    const first = r.search(0);
    expect(first).toEqual(["a.example"]);
    expect(r.search(1)).toBe(first);
    write("nameserver 192.0.2.1\nsearch b.example c.example\n", 30_000);
    expect(r.search(2)).toEqual(["b.example", "c.example"]);
  });

  test("reads the servers, re-reads when the file changes", () => {
    write("nameserver 192.0.2.1\n", 60_000);
    const r = new ResolvConf(path);
    expect(names(r, 0)).toEqual(["192.0.2.1"]);
    write("nameserver 192.0.2.2\nnameserver 2001:db8::2\n", 30_000);
    expect(names(r, 1)).toEqual(["192.0.2.2", "2001:db8::2"]);
  });

  test("a file caught empty mid-rewrite keeps the last list, and the rewrite is picked up with the same mtime", () => {
    write("nameserver 192.0.2.1\n", 60_000);
    const r = new ResolvConf(path);
    expect(names(r, 0)).toEqual(["192.0.2.1"]);
    // Truncated by the writer just now: not taken as "no servers".
    write("", 0);
    expect(names(r, 10)).toEqual(["192.0.2.1"]);
    // The writer finishes within the same mtime tick: still read again after RETRY_MS.
    writeFileSync(path, "nameserver 192.0.2.9\n");
    expect(names(r, 10 + RETRY_MS)).toEqual(["192.0.2.9"]);
  });

  test("a failed read is retried, not remembered", () => {
    // A directory: stat works, the read fails (as EMFILE or a swap would).
    mkdirSync(path);
    const r = new ResolvConf(path);
    expect(names(r, 0)).toEqual(["127.0.0.1"]);
    rmSync(path, { recursive: true });
    write("nameserver 192.0.2.3\n", 60_000);
    // Not before the retry time (a DNS flood must not read the file per flow)...
    expect(names(r, RETRY_MS - 1)).toEqual(["127.0.0.1"]);
    // ...but at it.
    expect(names(r, RETRY_MS)).toEqual(["192.0.2.3"]);
  });

  test("a missing file is retried too", () => {
    const r = new ResolvConf(path);
    expect(names(r, 0)).toEqual(["127.0.0.1"]);
    write("nameserver 192.0.2.4\n", 60_000);
    expect(names(r, RETRY_MS)).toEqual(["192.0.2.4"]);
  });

  test("a settled file without nameservers means glibc's default, 127.0.0.1", () => {
    write("nameserver 192.0.2.1\n", 60_000);
    const r = new ResolvConf(path);
    expect(names(r, 0)).toEqual(["192.0.2.1"]);
    write("search example\n", SETTLE_MS + 1000);
    expect(names(r, 1)).toEqual(["127.0.0.1"]);
  });
});
