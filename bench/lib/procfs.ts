// What a stack costs, read from /proc for its whole process tree (every
// process descended from the PID we started, every thread of each).
import { readFileSync, readdirSync } from "node:fs";

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** Fields of /proc/PID/stat after the command name (field 3 is index 0). */
function statFields(text: string): string[] {
  return text.slice(text.lastIndexOf(")") + 2).trim().split(" ");
}

/** root and all its descendants that are still there. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const st = read(`/proc/${name}/stat`);
    if (st === null) continue;
    const ppid = Number(statFields(st)[1]);
    const list = children.get(ppid);
    if (list) list.push(Number(name));
    else children.set(ppid, [Number(name)]);
  }
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0) {
    const pid = todo.pop()!;
    if (read(`/proc/${pid}/stat`) === null) continue;
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

function statusValue(text: string, key: string): number {
  const m = text.match(new RegExp(`^${key}:\\s+(\\d+)`, "m"));
  return m ? Number(m[1]) : 0;
}

export interface Usage {
  /** CLOCK_MONOTONIC-like time of the snapshot, ns. */
  t: number;
  pids: number[];
  /** utime+stime of the processes (tick resolution; includes threads that have exited). */
  statNs: number;
  rssKiB: number;
  hwmKiB: number;
  threads: number;
  /** "pid/tid" -> [schedstat run time ns, voluntary + involuntary context switches] per live thread */
  tasks: Map<string, [number, number]>;
}

const TICK_NS = 1e9 / Number(process.env.BENCH_CLK_TCK || 100);

export function usage(root: number): Usage | null {
  const pids = processTree(root);
  if (pids.length === 0) return null;
  const u: Usage = {
    t: Number(process.hrtime.bigint()), pids, statNs: 0, rssKiB: 0, hwmKiB: 0, threads: 0,
    tasks: new Map(),
  };
  for (const pid of pids) {
    const st = read(`/proc/${pid}/stat`);
    const status = read(`/proc/${pid}/status`);
    if (st === null || status === null) continue;
    const f = statFields(st);
    u.statNs += (Number(f[11]) + Number(f[12])) * TICK_NS;
    u.rssKiB += statusValue(status, "VmRSS");
    u.hwmKiB += statusValue(status, "VmHWM");
    let tids: string[] = [];
    try {
      tids = readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) {
      const sched = read(`/proc/${pid}/task/${tid}/schedstat`);
      const ts = read(`/proc/${pid}/task/${tid}/status`);
      if (sched === null || ts === null) continue;
      const ran = Number(sched.split(" ")[0]);
      const sw = statusValue(ts, "voluntary_ctxt_switches") + statusValue(ts, "nonvoluntary_ctxt_switches");
      u.threads++;
      u.tasks.set(`${pid}/${tid}`, [ran, sw]);
    }
  }
  return u;
}

export interface Rates {
  /** % of one core, from schedstat */
  cpuPct: number;
  /** % of one core, from utime+stime */
  statCpuPct: number;
  wakeupsPerS: number;
}

/**
 * Per thread: a thread alive at both ends counts its difference, a thread
 * born in between counts all it did. (Runtimes such as Bun end idle helper
 * threads; a plain difference of the sums would go down when one exits.)
 * A thread that exited in between is missed by the schedstat numbers; the
 * utime+stime numbers include it.
 */
export function rates(a: Usage, b: Usage): Rates {
  const seconds = (b.t - a.t) / 1e9;
  let ran = 0;
  let switches = 0;
  for (const [id, [r1, s1]] of b.tasks) {
    const [r0, s0] = a.tasks.get(id) ?? [0, 0];
    ran += Math.max(0, r1 - r0);
    switches += Math.max(0, s1 - s0);
  }
  return {
    cpuPct: (100 * ran) / 1e9 / seconds,
    statCpuPct: (100 * (b.statNs - a.statNs)) / 1e9 / seconds,
    wakeupsPerS: switches / seconds,
  };
}

/** Received packets of an interface in our network namespace (/proc/net/dev). */
export function rxPackets(iface: string): number {
  const text = read("/proc/net/dev") ?? "";
  for (const line of text.split("\n")) {
    const [name, rest] = line.split(":");
    if (name?.trim() === iface && rest) return Number(rest.trim().split(/\s+/)[1]);
  }
  return -1;
}

/** TCP sockets in a given state (hex, as in /proc/net/tcp) in the netns of pid ("self" for ours). */
export function tcpSockets(pid: number | "self", state: string, localPort?: number): number {
  let n = 0;
  for (const file of ["tcp", "tcp6"]) {
    const text = read(`/proc/${pid}/net/${file}`) ?? "";
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4 || f[3] !== state) continue;
      if (localPort !== undefined && parseInt(f[1]!.split(":")[1]!, 16) !== localPort) continue;
      n++;
    }
  }
  return n;
}

export const TCP_LISTEN = "0A";
export const TCP_TIME_WAIT = "06";

export interface MachineCpu {
  t: number;
  /** user+nice+system of all CPUs, ns */
  busyNs: number;
  stealNs: number;
  /** utime+stime+cutime+cstime of every process we can see (our PID namespace), ns */
  ownNs: number;
}

/**
 * How busy the machine is apart from us. /proc/stat is not namespaced, but
 * our /proc only lists our own PID namespace, so busy - own is what other
 * processes on the machine used (plus a little kernel work not charged to
 * any of our tasks).
 */
export function machineCpu(): MachineCpu {
  const cpu = (read("/proc/stat") ?? "").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  let own = 0;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const st = read(`/proc/${name}/stat`);
    if (st === null) continue;
    const f = statFields(st);
    own += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return {
    t: Number(process.hrtime.bigint()),
    busyNs: ((cpu[0] ?? 0) + (cpu[1] ?? 0) + (cpu[2] ?? 0)) * TICK_NS,
    stealNs: (cpu[7] ?? 0) * TICK_NS,
    ownNs: own * TICK_NS,
  };
}

/** % of one core used by everything else, and stolen by the hypervisor, between a and b. */
export function foreignCpu(a: MachineCpu, b: MachineCpu): { othersPct: number; stealPct: number } {
  const dt = (b.t - a.t) / 100; // ns per percent
  return {
    othersPct: Math.max(0, (b.busyNs - a.busyNs - (b.ownNs - a.ownNs)) / dt),
    stealPct: (b.stealNs - a.stealNs) / dt,
  };
}
