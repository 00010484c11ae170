// -m ADDR: the HTTP debug server. /health, the pprof index
// that scripts probe (the heading "Types of profiles available:" within the
// first 300 bytes), and what we really offer behind it: counters, the live
// flow table as JSON, a heap snapshot. Plus /metrics in Prometheus text
// format: frames, bytes, drops by reason, flows by state, connects by
// outcome.
//
// The server runs on the event loop that carries every flow, so each
// request does bounded work: the flow table is served in pages, /metrics
// counts flows by state in one walk of the table without allocating, and
// the heap snapshot, which cannot be bounded, is guarded (see `heap`).
import type { Server } from "bun";
import type { Stats } from "../../stack/stats.ts";

/** The `-m NET://ADDR` value, as src/cli/metrics-addr.ts resolves it (docs/compatibility.md, Metrics address). */
export interface MetricsAddress {
  network: "tcp" | "unix" | "udp";
  /** Go's String() of the resolved address: "127.0.0.1:8080", "[::1]:80", ":80", or the unix path. */
  address: string;
  /** tcp/udp: the IP to listen on, null for all addresses (empty host). */
  ip: string | null;
  /** tcp/udp: the port (0 = ephemeral). Null for unix. */
  port: number | null;
}

/** What the server reports about live flows. */
export interface FlowSource {
  /** Live flows, TCP and UDP. */
  readonly flowCount: number;
  /**
   * Rows for the live flows at positions [offset, offset + limit) of the
   * flow table (TCP, then UDP), for /debug/pprof/flows.
   */
  flowRows(offset: number, limit: number): unknown[];
  /** Flow counts by protocol and state, for /metrics. */
  flowCounts(): Array<{ proto: string; state: string; count: number }>;
}

/** Rows in a /debug/pprof/flows page without ?limit=, and the most ?limit= may ask for. */
export const FLOWS_PAGE = 1000;
export const FLOWS_PAGE_MAX = 10_000;

/**
 * The heap snapshot: at most one per HEAP_INTERVAL_MS, counted from the end
 * of the previous one, and none while the JavaScript heap holds more than
 * HEAP_MAX_BYTES.
 */
export const HEAP_INTERVAL_MS = 60_000;
export const HEAP_MAX_BYTES = 32 * 1024 * 1024;

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
flows: the live flow table as JSON, ${FLOWS_PAGE} rows a page: ?offset=N&amp;limit=N (at most ${FLOWS_PAGE_MAX}); the X-Total-Count header holds the number of flows, the Link header the next page.<br>
heap: a heap snapshot for Chrome DevTools, as a download. It stops every flow while it is taken, so it is taken only for heap?stall=1, at most once a minute, and not over ${HEAP_MAX_BYTES / 1048576} MiB of heap.<br>
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
  metric(
    "slirpnetstack_limit_hits_total",
    "counter",
    "Times a cap on a table or buffer that a guest or local client can grow was reached, by limit.",
    stats.limitTable().map(([k, n]) => [`{limit="${promLabel(k)}"}`, n]),
  );
  metric(
    "slirpnetstack_handler_faults_total",
    "counter",
    "Handlers that threw (bugs), each confined to its flow (reset) or frame (dropped), by call site.",
    stats.faultTable().map(([k, n]) => [`{where="${promLabel(k)}"}`, n]),
  );
  metric(
    "slirpnetstack_log_lines_lost_total",
    "counter",
    "Log lines not printed: dropped (the output was not writable and the queue full) or suppressed (a per-flow rate limit).",
    stats.eventTable().filter(([k]) => k.startsWith("log-")).map(([k, n]) => [`{reason="${promLabel(k.slice("log-".length))}"}`, n]),
  );
  return out.join("\n") + "\n";
}

export class MetricsServer {
  private server: Server<undefined> | null = null;
  /** performance.now() at the end of the last heap snapshot; -Infinity before the first. */
  private heapTakenAt = -Infinity;

  constructor(
    private readonly stats: Stats,
    private readonly flows: FlowSource,
  ) {}

  /** Starts listening; returns the address for the "Running metrics on" line. */
  start(addr: MetricsAddress): string {
    if (addr.network === "udp") {
      // Go's net.Listen knows no "udp" listener (exit 254).
      throw new Error(`listen udp ${addr.address}: unknown network udp`);
    }
    const fetch = (req: Request): Response => this.route(req);
    if (addr.network === "unix") {
      // The socket file is created by bind() with mode 0777 & ~umask, and
      // whoever can connect reads every flow's endpoints and can take a heap
      // snapshot. Bun.serve binds before it returns, so a umask of 0177
      // around the call creates it 0600 with no window in which it is more
      // open (a chmod after bind would leave one).
      const umask = process.umask(0o177);
      try {
        this.server = Bun.serve({ unix: addr.address, fetch });
      } finally {
        process.umask(umask);
      }
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
    const url = new URL(req.url);
    switch (url.pathname) {
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
        return this.flowPage(url.searchParams);
      case "/debug/pprof/heap":
        return this.heap(url.searchParams);
      default:
        return text("404 page not found\n", 404);
    }
  }

  /**
   * One page of the flow table: a JSON array of at most `limit` rows from
   * position `offset`, so that a request's work and response stay bounded
   * however many flows there are. The body is the same array as before
   * pages existed; X-Total-Count holds the number of live flows and Link
   * (RFC 8288) the next page while there is one. Pages are read from the
   * live table, so flows that come or go between requests shift the rest.
   */
  private flowPage(q: URLSearchParams): Response {
    const offset = count(q.get("offset"), 0);
    const limit = count(q.get("limit"), FLOWS_PAGE);
    if (offset === null || limit === null || limit < 1 || limit > FLOWS_PAGE_MAX) {
      return text(`offset must be an integer >= 0, limit an integer from 1 to ${FLOWS_PAGE_MAX}\n`, 400);
    }
    const total = this.flows.flowCount;
    const headers: Record<string, string> = { "content-type": "application/json", "x-total-count": String(total) };
    if (offset + limit < total) headers.link = `</debug/pprof/flows?offset=${offset + limit}&limit=${limit}>; rel="next"`;
    return new Response(JSON.stringify(this.flows.flowRows(offset, limit), null, 1), { headers });
  }

  /**
   * A heap snapshot stops the event loop, and with it every flow, for as
   * long as it takes: JavaScriptCore walks the whole heap synchronously and
   * no runtime offers it in the background. Measured in V8's format: 0.25 s
   * at 18 MiB of heap, 2 s at 98 MiB (Bun's own format took 2.5 times as
   * long; V8's is also the one Chrome DevTools reads). Nothing bounds that
   * stall but the heap, so the snapshot is guarded:
   * - only on request: without ?stall=1 the answer is 400 and an
   *   explanation, so a crawler or a click on the index stalls nothing;
   * - refused (503) while the heap is over HEAP_MAX_BYTES, which keeps the
   *   stall near half a second;
   * - refused (429, Retry-After) within HEAP_INTERVAL_MS of the end of the
   *   previous one. Requests that arrived while one was being taken are
   *   answered after it, inside that interval: a burst yields one snapshot.
   */
  private heap(q: URLSearchParams): Response {
    const rules = `at most one per ${HEAP_INTERVAL_MS / 1000} s, none over ${HEAP_MAX_BYTES / 1048576} MiB of heap`;
    if (q.get("stall") !== "1") {
      return text(`a heap snapshot stops every flow while it is taken; ask for /debug/pprof/heap?stall=1 (${rules})\n`, 400);
    }
    const wait = this.heapTakenAt + HEAP_INTERVAL_MS - performance.now();
    if (wait > 0) {
      return new Response(`a heap snapshot was taken less than ${HEAP_INTERVAL_MS / 1000} s ago (${rules})\n`, {
        status: 429,
        headers: { "content-type": "text/plain; charset=utf-8", "retry-after": String(Math.ceil(wait / 1000)) },
      });
    }
    const heapUsed = process.memoryUsage().heapUsed;
    if (heapUsed > HEAP_MAX_BYTES) {
      return text(`the heap holds ${Math.ceil(heapUsed / 1048576)} MiB: a snapshot would stop every flow for too long (${rules})\n`, 503);
    }
    let snapshot: ArrayBuffer;
    try {
      snapshot = Bun.generateHeapSnapshot("v8", "arraybuffer");
    } finally {
      this.heapTakenAt = performance.now();
    }
    return new Response(snapshot, {
      headers: {
        "content-type": "application/json",
        "content-disposition": 'attachment; filename="slirpnetstack.heapsnapshot"',
      },
    });
  }
}

/** A query parameter as a non-negative integer: `absent` when missing, null when malformed. */
function count(v: string | null, absent: number): number | null {
  if (v === null) return absent;
  if (!/^\d{1,9}$/.test(v)) return null;
  return Number(v);
}
