// LimitReporter: one line per limit per REPORT_MS, with the hits it hid.
import { describe, expect, test } from "bun:test";
import { Stats } from "../../../src/stack/stats.ts";
import { LimitReporter } from "../../../src/host/control/limits.ts";
import { REPORT_MS } from "../../../src/host/control/quiet-periods.ts";

function rig(): { stats: Stats; lines: string[]; clock: { now: number } } {
  const stats = new Stats();
  const lines: string[] = [];
  const clock = { now: 0 };
  new LimitReporter((l) => lines.push(l), () => clock.now).attach(stats);
  return { stats, lines, clock };
}

describe("LimitReporter", () => {
  test("every hit is counted, one line per limit per REPORT_MS, and the next line says how many were hidden", () => {
    const { stats, lines, clock } = rig();
    for (let i = 0; i < 5; i++) stats.limit("test-a");
    stats.limit("test-b");
    expect(stats.limitCount("test-a")).toBe(5);
    expect(stats.limitTable()).toEqual([
      ["test-a", 5],
      ["test-b", 1],
    ]);
    expect(lines).toEqual(["[!] Limit test-a reached", "[!] Limit test-b reached"]);
    clock.now = REPORT_MS - 1;
    stats.limit("test-a");
    expect(lines.length).toBe(2);
    clock.now = REPORT_MS;
    stats.limit("test-a");
    expect(lines.at(-1)).toBe("[!] Limit test-a reached; 5 more hits since the last report");
  });
});
