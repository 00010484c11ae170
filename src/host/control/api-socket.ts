// The JSON control socket: slirp4netns 1.2's API (add_hostfwd, list_hostfwd,
// remove_hostfwd), byte for byte, plus IPv6 addresses and list_flows.
//
// Protocol, as slirp4netns serves it: one request per connection, read in a
// single read of at most 4095 bytes (a read that fills 4096 bytes is "too
// large"), the client ends it with shutdown(SHUT_WR); one reply, no newline,
// then the server closes. Stream reads may split a request, so we answer on
// the client's shutdown, or as soon as the bytes so far are a whole JSON
// object (slirp4netns answers its one read without waiting for the
// shutdown, and clients that never send one exist), or after
// readTimeoutMs. Replies are compact JSON with slirp4netns's exact
// error texts; note list_hostfwd's reply has no "return" wrapper.
//
// Beyond slirp4netns: host_addr and guest_addr may be IPv6 (either side,
// independently); forwards are -L forwards, so the guest sees the client's
// real address; list_flows pages through the flow table.
import type { Socket, UnixSocketListener } from "bun";
import { unlinkSync } from "node:fs";
import { formatIP, parseIP } from "../../wire/addr.ts";
import { FLOWS_PAGE, FLOWS_PAGE_MAX } from "./metrics.ts";

/** slirp4netns's request buffer: a request must be shorter than this. */
export const API_MAX_REQUEST = 4096;
/** Bounds on API clients. */
export interface ApiLimits {
  /**
   * How long a client may take to send a whole request or shut down its
   * side; then what came is answered, as slirp4netns answers its one read.
   */
  readTimeoutMs: number;
  /** API connections served at once; further ones are closed at once. */
  maxConnections: number;
}

export const API_LIMITS: ApiLimits = { readTimeoutMs: 5_000, maxConnections: 16 };

/** One forward as the API sees it. */
export interface HostFwd {
  proto: "tcp" | "udp";
  /** Normalised IP literal (IPv4 dotted, IPv6 RFC 5952). */
  hostAddr: string;
  hostPort: number;
  guestAddr: string;
  guestPort: number;
}

/** A forward that is up; stop() closes its listener. */
export interface ForwardHandle {
  stop(): void;
}

/** What the API socket needs from the process. */
export interface ApiDeps {
  /** Starts a forward: its handle, or an error text when it cannot listen. */
  addForward(fwd: HostFwd): ForwardHandle | string;
  /** The guest address used when a request names none (slirp4netns: the guest network's .100, 10.0.2.100 by default). */
  defaultGuestAddr: string;
  /** The flow table (list_flows); absent: list_flows is an unknown execute, as in slirp4netns. */
  flowRows?: (offset: number, limit: number) => unknown[];
  /** A line for the log (a failed listen, say). */
  log?: (line: string) => void;
}

const ERR_TOO_LARGE = `{"error":{"desc":"bad request: too large message"}}`;

function error(desc: string): string {
  return `{"error":{"desc":"bad request: ${desc}"}}`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * A number argument as slirp4netns reads it: (int) of the JSON number, 0
 * when absent or not a number.
 */
function intArg(args: Record<string, unknown> | null, key: string): number {
  const v = args?.[key];
  return typeof v === "number" && Number.isFinite(v) ? Math.trunc(v) : 0;
}

function stringArg(args: Record<string, unknown> | null, key: string): string | null {
  const v = args?.[key];
  return typeof v === "string" ? v : null;
}

function validPort(p: number): boolean {
  return p >= 1 && p <= 65535;
}

/** The forwards added through the API, in the order they were added, and the request handler. */
export class ApiState {
  private nextId = 1;
  private readonly fwds: { id: number; fwd: HostFwd; handle: ForwardHandle }[] = [];

  constructor(private readonly deps: ApiDeps) {}

  /** The reply to one request (its bytes as read, shorter than API_MAX_REQUEST). */
  handle(request: Uint8Array): string {
    // slirp4netns reads the request as a C string: it ends at a NUL.
    const nul = request.indexOf(0);
    const text = new TextDecoder("utf-8", { fatal: false }).decode(nul < 0 ? request : request.subarray(0, nul));
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch {
      return error("cannot parse JSON");
    }
    if (!isObject(v)) return error("json_object() failed");
    const execute = v.execute;
    if (typeof execute !== "string") return error("no execute found");
    const args = isObject(v.arguments) ? v.arguments : null;
    switch (execute) {
      case "add_hostfwd":
        return this.add(args);
      case "list_hostfwd":
        return this.list();
      case "remove_hostfwd":
        return this.remove(args);
      case "list_flows":
        if (this.deps.flowRows) return this.listFlows(args, this.deps.flowRows);
        return error("unknown execute");
      default:
        return error("unknown execute");
    }
  }

  private add(args: Record<string, unknown> | null): string {
    const proto = stringArg(args, "proto");
    if (proto !== "tcp" && proto !== "udp") return error("add_hostfwd: bad arguments.proto");
    const hostText = stringArg(args, "host_addr") || "0.0.0.0";
    const host = parseIP(hostText);
    if (host === null) return error("add_hostfwd: bad arguments.host_addr");
    const hostPort = intArg(args, "host_port");
    if (!validPort(hostPort)) return error("add_hostfwd: bad arguments.host_port");
    const guestText = stringArg(args, "guest_addr") || this.deps.defaultGuestAddr;
    const guest = parseIP(guestText);
    if (guest === null) return error("add_hostfwd: bad arguments.guest_addr");
    const guestPort = intArg(args, "guest_port");
    if (!validPort(guestPort)) return error("add_hostfwd: bad arguments.guest_port");
    const fwd: HostFwd = { proto, hostAddr: formatIP(host), hostPort, guestAddr: formatIP(guest), guestPort };
    const handle = this.deps.addForward(fwd);
    if (typeof handle === "string") {
      this.deps.log?.(`[!] api-socket add_hostfwd ${proto} ${fwd.hostAddr} ${hostPort}: ${handle}`);
      return error("add_hostfwd: slirp_add_hostfwd failed");
    }
    const id = this.nextId++;
    this.fwds.push({ id, fwd, handle });
    return `{"return":{"id":${id}}}`;
  }

  private list(): string {
    const entries = this.fwds.map(({ id, fwd }) => ({
      id,
      proto: fwd.proto,
      host_addr: fwd.hostAddr,
      host_port: fwd.hostPort,
      guest_addr: fwd.guestAddr,
      guest_port: fwd.guestPort,
    }));
    return JSON.stringify({ entries });
  }

  private remove(args: Record<string, unknown> | null): string {
    const id = intArg(args, "id");
    const i = this.fwds.findIndex((f) => f.id === id);
    if (i < 0) return error("remove_hostfwd: bad arguments.id");
    this.fwds[i]!.handle.stop();
    this.fwds.splice(i, 1);
    return `{"return":{}}`;
  }

  /** {"execute":"list_flows","arguments":{"offset":N,"limit":N}}: one bounded page of flow rows. */
  private listFlows(args: Record<string, unknown> | null, rows: (offset: number, limit: number) => unknown[]): string {
    const offset = Math.max(0, intArg(args, "offset"));
    const asked = intArg(args, "limit");
    const limit = asked <= 0 ? FLOWS_PAGE : Math.min(asked, FLOWS_PAGE_MAX);
    return JSON.stringify({ return: { flows: rows(offset, limit) } });
  }

  /** Closes every forward added through the API. */
  stop(): void {
    for (const f of this.fwds) f.handle.stop();
    this.fwds.length = 0;
  }
}

/** Per connection: the request read so far. */
interface Conn {
  buf: Uint8Array;
  len: number;
  timer: ReturnType<typeof setTimeout> | null;
  done: boolean;
  /** Counted against limits.maxConnections until it closes. */
  counted: boolean;
}

export interface ApiSocket {
  readonly state: ApiState;
  /** Closes the listener, every API forward, and removes the socket file. */
  stop(): void;
}

/** Whether `bytes` (a request read so far) is one complete JSON object: the request needs no more bytes. */
function isWholeObject(bytes: Uint8Array): boolean {
  if (bytes.lastIndexOf(0x7d /* } */) < 0) return false;
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return typeof v === "object" && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

/**
 * Listens on a unix socket at `path` (an existing file there is replaced, as
 * slirp4netns does) created 0600, and serves the API. Throws when it cannot
 * listen.
 */
export function startApiSocket(path: string, deps: ApiDeps, limits: ApiLimits = API_LIMITS): ApiSocket {
  const state = new ApiState(deps);
  let open = 0;

  const finish = (s: Socket<Conn>, reply: string): void => {
    const c = s.data;
    if (c.done) return;
    c.done = true;
    if (c.timer !== null) clearTimeout(c.timer);
    s.end(reply);
  };

  try {
    unlinkSync(path);
  } catch {
    // Nothing there: fine.
  }
  // bind() creates the file 0777 & ~umask, and whoever can connect can open
  // listeners in our name: a umask of 0177 around the bind makes it 0600
  // with no window in which it is more open.
  const umask = process.umask(0o177);
  let listener: UnixSocketListener<Conn>;
  try {
    listener = Bun.listen<Conn>({
      unix: path,
      socket: {
        open(s) {
          const full = open >= limits.maxConnections;
          s.data = { buf: new Uint8Array(full ? 0 : API_MAX_REQUEST), len: 0, timer: null, done: full, counted: !full };
          if (full) {
            s.end();
            return;
          }
          open++;
          s.data.timer = setTimeout(() => {
            s.data.timer = null;
            finish(s, state.handle(s.data.buf.subarray(0, s.data.len)));
          }, limits.readTimeoutMs);
        },
        data(s, chunk) {
          const c = s.data;
          if (c.done) return;
          const room = API_MAX_REQUEST - c.len;
          c.buf.set(chunk.subarray(0, room), c.len);
          c.len += Math.min(room, chunk.length);
          if (c.len >= API_MAX_REQUEST) finish(s, ERR_TOO_LARGE);
          else if (isWholeObject(c.buf.subarray(0, c.len))) finish(s, state.handle(c.buf.subarray(0, c.len)));
        },
        end(s) {
          finish(s, state.handle(s.data.buf.subarray(0, s.data.len)));
        },
        close(s) {
          const c = s.data;
          if (c.timer !== null) clearTimeout(c.timer);
          c.timer = null;
          if (c.counted) open--;
          c.counted = false;
          c.done = true;
        },
      },
    });
  } finally {
    process.umask(umask);
  }

  return {
    state,
    stop(): void {
      listener.stop(true);
      state.stop();
      try {
        unlinkSync(path);
      } catch {
        // Already gone.
      }
    },
  };
}
