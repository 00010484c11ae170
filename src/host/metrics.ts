// -m ADDR: the HTTP debug server (contract §14). /health, the pprof index
// that scripts probe (the heading "Types of profiles available:" within the
// first 300 bytes), and what we really offer behind it: counters, the live
// flow table as JSON, a Bun heap snapshot. Plus /metrics in Prometheus text
// format: frames, bytes, drops by reason, flows by state, connects by
// outcome.
import type { Server } from "bun";
import type { MetricsAddress } from "../cli/metrics-addr.ts";
import type { Stats } from "../stack/stats.ts";

/** What the server reports about live flows. */
export interface FlowSource {
  /** One row per live flow, for /debug/pprof/flows. */
  flowTable(): unknown[];
  /** Flow counts by protocol and state, for /metrics. */
  flowCounts(): Array<{ proto: string; state: string; count: number }>;
}

const INDEX = `<html>
<head>
<title>/debug/pprof/</title>
</head>
<body>
/debug/pprof/<br>
<br>
Types of profiles available:
<table>
<thead><td>Count</td><td>Profile</td></thead>
<tr><td>-</td><td><a href="counters">counters</a></td></tr>
<tr><td>-</td><td><a href="flows">flows</a></td></tr>
<tr><td>-</td><td><a href="heap">heap</a></td></tr>
</table>
<br>
<p>counters: frame, byte, drop and connect counters as JSON.<br>
flows: the live flow table as JSON.<br>
heap: a Bun (JavaScriptCore) heap snapshot, as a JSON download.<br>
Prometheus metrics are at <a href="/metrics">/metrics</a>.</p>
</body>
</html>
`;

function text(body: string, status = 200, type = "text/plain; charset=utf-8"): Response {
  return new Response(body, { status, headers: { "content-type": type } });
}

function json(value: unknown): Response {
  return new Response(JSON.stringify(value, null, 1), { headers: { "content-type": "application/json" } });
}

function promLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

export function renderPrometheus(stats: Stats, flows: FlowSource): string {
  const out: string[] = [];
  const metric = (name: string, type: string, help: string, rows: Array<[string, number]>) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of rows) out.push(`${name}${labels} ${v}`);
  };
  metric("slirpnetstack_frames_total", "counter", "Frames through the guest device.", [
    ['{direction="rx"}', stats.rxFrames],
    ['{direction="tx"}', stats.txFrames],
  ]);
  metric("slirpnetstack_bytes_total", "counter", "Bytes of frames through the guest device.", [
    ['{direction="rx"}', stats.rxBytes],
    ['{direction="tx"}', stats.txBytes],
  ]);
  metric(
    "slirpnetstack_drops_total",
    "counter",
    "Frames, segments and datagrams dropped, by reason.",
    stats.dropTable().map(([r, n]) => [`{reason="${promLabel(r)}"}`, n]),
  );
  metric(
    "slirpnetstack_flows",
    "gauge",
    "Live flows by protocol and state.",
    flows.flowCounts().map((f) => [`{proto="${f.proto}",state="${promLabel(f.state)}"}`, f.count]),
  );
  const connects = stats.eventTable().filter(([k]) => k.startsWith("connect-"));
  metric(
    "slirpnetstack_connects_total",
    "counter",
    "Host-side connects for guest flows, by outcome.",
    connects.map(([k, n]) => [`{outcome="${promLabel(k.slice("connect-".length))}"}`, n]),
  );
  return out.join("\n") + "\n";
}

export class MetricsServer {
  private server: Server<undefined> | null = null;

  constructor(
    private readonly stats: Stats,
    private readonly flows: FlowSource,
  ) {}

  /** Starts listening; returns the address for the "Running metrics on" line. */
  start(addr: MetricsAddress): string {
    if (addr.network === "udp") {
      // Go's net.Listen knows no "udp" listener (contract §3.3: exit 254).
      throw new Error(`listen udp ${addr.address}: unknown network udp`);
    }
    const fetch = (req: Request): Response => this.route(req);
    if (addr.network === "unix") {
      this.server = Bun.serve({ unix: addr.address, fetch });
      return addr.address;
    }
    // An empty host listens on every address, dual-stack, as Go does.
    this.server = Bun.serve({ hostname: addr.ip ?? "::", port: addr.port ?? 0, fetch, reusePort: false });
    const host = this.server.hostname ?? "";
    return `${host.includes(":") ? `[${host}]` : host}:${this.server.port}`;
  }

  stop(): void {
    this.server?.stop(true);
    this.server = null;
  }

  private route(req: Request): Response {
    const path = new URL(req.url).pathname;
    switch (path) {
      case "/health":
        return text("ok");
      case "/metrics":
        return text(renderPrometheus(this.stats, this.flows), 200, "text/plain; version=0.0.4; charset=utf-8");
      case "/debug/pprof":
        return new Response(null, { status: 301, headers: { location: "/debug/pprof/" } });
      case "/debug/pprof/":
        return text(INDEX, 200, "text/html; charset=utf-8");
      case "/debug/pprof/counters":
        return json({
          rxFrames: this.stats.rxFrames,
          rxBytes: this.stats.rxBytes,
          txFrames: this.stats.txFrames,
          txBytes: this.stats.txBytes,
          drops: Object.fromEntries(this.stats.dropTable()),
          events: Object.fromEntries(this.stats.eventTable()),
          memory: process.memoryUsage(),
        });
      case "/debug/pprof/flows":
        return json(this.flows.flowTable());
      case "/debug/pprof/heap":
        return new Response(JSON.stringify(Bun.generateHeapSnapshot()), {
          headers: {
            "content-type": "application/json",
            "content-disposition": 'attachment; filename="slirpnetstack.heapsnapshot"',
          },
        });
      default:
        return text("404 page not found\n", 404);
    }
  }
}
