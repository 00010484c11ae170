// The usual integration setup in one call: a private host namespace, a
// guest namespace with its tap (or tun), and the stack attached to it. The
// rig is destroyed by `withRig` whatever the test body does, and every part
// is registered with the cleanup registry too (test/support/cleanup.ts).
import { readFileSync, readdirSync } from "node:fs";
import { GuestNs, HostNs, type GuestOptions } from "./netns.ts";
import { StackProcess, type StackOptions } from "./stack.ts";

export interface RigOptions {
  guest?: GuestOptions;
  /** Extra stack flags after `-netns PATH`. */
  args?: string[];
  /** Addresses on the host namespace's lo. */
  hostAddrs?: string[];
  stack?: Omit<StackOptions, "host">;
}

export interface Rig {
  host: HostNs;
  guest: GuestNs;
  stack: StackProcess;
}

export async function createRig(opts: RigOptions = {}): Promise<Rig> {
  const host = await HostNs.create(opts.hostAddrs ?? []);
  let guest: GuestNs | null = null;
  try {
    guest = await GuestNs.create(opts.guest ?? {});
    const stack = await StackProcess.start(["-netns", guest.netnsPath, ...(opts.args ?? [])], { ...opts.stack, host });
    return { host, guest, stack };
  } catch (e) {
    await guest?.destroy();
    await host.destroy();
    throw e;
  }
}

export async function destroyRig(rig: Rig): Promise<void> {
  await rig.stack.destroy();
  await rig.guest.destroy();
  await rig.host.destroy();
}

/** Runs `body` with a fresh rig and always tears it down. */
export async function withRig<T>(opts: RigOptions, body: (rig: Rig) => Promise<T>): Promise<T> {
  const rig = await createRig(opts);
  try {
    return await body(rig);
  } finally {
    await destroyRig(rig);
  }
}

/** Polls `cond` until it is truthy; throws with `what` on timeout. */
export async function waitUntil<T>(what: string, cond: () => T | Promise<T>, timeoutMs = 5000, stepMs = 5): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() >= end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(stepMs);
  }
}

/** True while /proc/PID exists and is not a zombie. */
export function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

/** utime+stime of a process in clock ticks (USER_HZ, 100 on Linux). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return Number(fields[11]) + Number(fields[12]);
}

/** Sum over all threads of on-CPU time in ns (/proc/PID/task/TID/schedstat). */
export function cpuNs(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // thread exited meanwhile
    }
  }
  return total;
}

/** Sum over all threads of voluntary + involuntary context switches. */
export function contextSwitches(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
      for (const m of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) total += Number(m[1]);
    } catch {
      // thread exited meanwhile
    }
  }
  return total;
}

/** A field of /proc/PID/status in KiB (VmRSS, VmHWM, ...). */
export function statusKiB(pid: number, field: string): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

/** Counters of /proc/net/snmp (IPv4: "Ip", "Icmp") or snmp6 inside a namespace. */
export async function snmpCounters(ns: { exec(cmd: string[]): Promise<{ stdout: string }> }): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const v4 = (await ns.exec(["cat", "/proc/net/snmp"])).stdout.split("\n");
  for (let i = 0; i + 1 < v4.length; i += 2) {
    const names = v4[i]!.split(/\s+/);
    const values = v4[i + 1]!.split(/\s+/);
    const prefix = names[0]!.replace(/:$/, "");
    for (let j = 1; j < names.length; j++) out[`${prefix}${names[j]}`] = Number(values[j]);
  }
  for (const line of (await ns.exec(["cat", "/proc/net/snmp6"])).stdout.split("\n")) {
    const [k, v] = line.split(/\s+/);
    if (k && v !== undefined) out[k] = Number(v);
  }
  return out;
}
