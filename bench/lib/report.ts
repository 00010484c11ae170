// Samples -> medians, the two tables (medians, ratios to a reference) and
// the JSON lines.

export interface Metric {
  key: string;
  label: string;
  unit: string;
  better: "higher" | "lower";
  digits: number;
  /** not in the ratio table (a ratio of two loss percentages means little) */
  noRatio?: boolean;
}

export const METRICS: Metric[] = [
  { key: "tcp_g2h_gbps", label: "TCP guest->host (iperf3)", unit: "Gbit/s", better: "higher", digits: 2 },
  { key: "tcp_h2g_gbps", label: "TCP host->guest (iperf3 -R)", unit: "Gbit/s", better: "higher", digits: 2 },
  { key: "tcp_rr_us", label: "TCP 1-byte ping-pong", unit: "us/RT", better: "lower", digits: 1 },
  { key: "tcp_rr_1cpu_us", label: "TCP 1-byte ping-pong, 1 CPU", unit: "us/RT", better: "lower", digits: 1 },
  { key: "udp_rr_us", label: "UDP 8-byte ping-pong", unit: "us/RT", better: "lower", digits: 1 },
  { key: "udp_rr_1cpu_us", label: "UDP 8-byte ping-pong, 1 CPU", unit: "us/RT", better: "lower", digits: 1 },
  { key: "udp_rr_loss_pct", label: "UDP 8-byte ping-pong, lost", unit: "%", better: "lower", digits: 2, noRatio: true },
  { key: "udp_rr_1cpu_loss_pct", label: "UDP 8-byte ping-pong, 1 CPU, lost", unit: "%", better: "lower", digits: 2, noRatio: true },
  { key: "tcp_crr_per_s", label: "TCP connect+1B echo+close", unit: "conn/s", better: "higher", digits: 0 },
  { key: "tcp_crr_1cpu_per_s", label: "TCP connect+1B echo+close, 1 CPU", unit: "conn/s", better: "higher", digits: 0 },
  { key: "launch_hello_ms", label: "launch: compiled Bun hello-world", unit: "ms", better: "lower", digits: 1, noRatio: true },
  { key: "launch_version_ms", label: "launch: -version", unit: "ms", better: "lower", digits: 1, noRatio: true },
  { key: "launch_help_ms", label: "launch: -h", unit: "ms", better: "lower", digits: 1, noRatio: true },
  { key: "launch_flag_error_ms", label: "launch: flag error", unit: "ms", better: "lower", digits: 1, noRatio: true },
  { key: "launch_attach_ms", label: "launch: attach to \"started\"", unit: "ms", better: "lower", digits: 1, noRatio: true },
  { key: "launch_run_true_ms", label: "launch: -- /bin/true", unit: "ms", better: "lower", digits: 1, noRatio: true },
  { key: "startup_ms", label: "startup to first TCP echo", unit: "ms", better: "lower", digits: 1 },
  { key: "idle_cpu_pct", label: "idle CPU (fresh)", unit: "% core", better: "lower", digits: 3 },
  { key: "idle_wakeups_per_s", label: "idle wakeups (fresh)", unit: "1/s", better: "lower", digits: 1 },
  { key: "idle_after_cpu_pct", label: "idle CPU (after load)", unit: "% core", better: "lower", digits: 3 },
  { key: "idle_after_wakeups_per_s", label: "idle wakeups (after load)", unit: "1/s", better: "lower", digits: 1 },
  { key: "tcp_g2h_cpu_pct", label: "stack CPU, iperf3 guest->host", unit: "% core", better: "lower", digits: 0 },
  { key: "tcp_h2g_cpu_pct", label: "stack CPU, iperf3 host->guest", unit: "% core", better: "lower", digits: 0 },
  { key: "rss_idle_mib", label: "RSS idle (fresh)", unit: "MiB", better: "lower", digits: 1 },
  { key: "peak_rss_mib", label: "peak RSS (VmHWM after iperf3)", unit: "MiB", better: "lower", digits: 1 },
];

export function median(v: number[]): number | null {
  if (v.length === 0) return null;
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Everything measured for one implementation at one MTU. */
export class Result {
  samples: Record<string, number[]> = {};
  /** per-sample details that are not metrics (loss, retransmits, TIME-WAIT counts...) */
  notes: Record<string, unknown[]> = {};
  errors: string[] = [];

  constructor(
    readonly impl: string,
    readonly mtu: number,
    readonly linkMtu: number,
    readonly version: string,
    readonly command: string,
  ) {}

  add(metric: string, value: number): void {
    if (!Number.isFinite(value)) return;
    (this.samples[metric] ??= []).push(value);
  }

  note(key: string, value: unknown): void {
    (this.notes[key] ??= []).push(value);
  }

  error(test: string, msg: string): void {
    this.errors.push(`${test}: ${msg}`);
  }

  med(metric: string): number | null {
    return median(this.samples[metric] ?? []);
  }

  json(settings: Record<string, unknown>): string {
    const metrics: Record<string, number> = {};
    const spread: Record<string, [number, number]> = {};
    for (const [k, v] of Object.entries(this.samples)) {
      if (v.length === 0) continue;
      metrics[k] = round(median(v)!, 4);
      spread[k] = [round(Math.min(...v), 4), round(Math.max(...v), 4)];
    }
    return JSON.stringify({
      type: "result",
      impl: this.impl,
      mtu: this.mtu,
      link_mtu: this.linkMtu,
      version: this.version,
      command: this.command,
      metrics,
      spread,
      samples: Object.fromEntries(Object.entries(this.samples).map(([k, v]) => [k, v.map((x) => round(x, 4))])),
      notes: this.notes,
      errors: this.errors,
      settings,
    });
  }
}

function round(x: number, sig: number): number {
  return x === 0 ? 0 : Number(x.toPrecision(Math.max(sig, Math.ceil(Math.log10(Math.abs(x))) + 2)));
}

function fmt(x: number | null, digits: number): string {
  if (x === null) return "-";
  return x.toFixed(digits);
}

function table(header: string[], rows: string[][], rightFrom: number): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    "| " + cells.map((c, i) => (i >= rightFrom ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join(" | ") + " |";
  const sep = "|" + w.map((n, i) => (i >= rightFrom ? "-".repeat(n + 1) + ":" : "-".repeat(n + 2))).join("|") + "|";
  return [line(header), sep, ...rows.map(line)].join("\n");
}

/** Medians with [min..max] of the samples, one column per implementation. */
export function mediansTable(results: Result[]): string {
  const rows: string[][] = [];
  for (const m of METRICS) {
    if (!results.some((r) => r.samples[m.key]?.length)) continue;
    rows.push([
      m.label,
      m.unit,
      m.better,
      ...results.map((r) => {
        const v = r.samples[m.key] ?? [];
        if (v.length === 0) return "-";
        const med = fmt(median(v), m.digits);
        return v.length === 1 ? med : `${med} [${fmt(Math.min(...v), m.digits)}..${fmt(Math.max(...v), m.digits)}]`;
      }),
    ]);
  }
  return table(["metric", "unit", "better", ...results.map((r) => r.impl)], rows, 3);
}

/** median(impl) / median(ref) per metric; the "better" column says which way is good. */
export function ratioTable(results: Result[], ref: Result): string {
  const others = results.filter((r) => r !== ref);
  const rows: string[][] = [];
  for (const m of METRICS) {
    const base = ref.med(m.key);
    if (m.noRatio || base === null || !others.some((r) => r.med(m.key) !== null)) continue;
    rows.push([
      m.label,
      m.better,
      ...others.map((r) => {
        const v = r.med(m.key);
        if (v === null) return "-";
        if (base === 0) return v === 0 ? "1.00x" : "inf";
        const q = v / base;
        return `${q >= 100 ? q.toFixed(0) : q >= 10 ? q.toFixed(1) : q.toFixed(2)}x`;
      }),
    ]);
  }
  return table([`ratio to ${ref.impl}`, "better", ...others.map((r) => r.impl)], rows, 2);
}

/** The launch rows, in table order. */
export const LAUNCH_KEYS = METRICS.filter((m) => m.key.startsWith("launch_")).map((m) => m.key);

/** slirpnetstack's launch times as multiples of the compiled hello-world's. */
export function launchTable(r: Result): string {
  const base = r.med("launch_hello_ms");
  const rows: string[][] = [];
  for (const m of METRICS) {
    const v = r.med(m.key);
    if (!m.key.startsWith("launch_") || m.key === "launch_hello_ms" || v === null || !base) continue;
    rows.push([m.label, fmt(v, m.digits), `${(v / base).toFixed(2)}x`]);
  }
  return table(["ratio to the hello-world", "ms", "ratio"], rows, 1);
}
