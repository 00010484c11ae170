// The one readiness edge of the process: every fd the data path uses (host
// TCP and UDP sockets, -L listeners) is registered here, edge-triggered, in
// one epoll set; the frame device is read on every wakeup.
//
// How the main thread learns that something is ready: Bun's event loop
// offers no way to watch a foreign fd, so each registered fd is also put in
// signal-driven mode (O_ASYNC, owner = the main thread). Readiness raises
// SIGIO; Bun runs our listener on the main thread, which asks epoll what is
// ready (epoll_wait with a zero timeout) until nothing is, and hands each
// event to its handler. Signals that arrive while one is pending merge, and
// the loop runs until epoll has nothing left, so no event waits for a
// signal that already merged.
//
// An fd added with readiness already pending (an accepted connection whose
// client spoke first) raises no signal of its own: adding marks the set
// dirty, and the next look (this turn's loop, or a microtask) finds it.
//
// The tap is not in the epoll set: it is read on every wakeup instead
// (addSignalled). The tun driver raises SIGIO for a frame *before* it
// wakes epoll waiters, so a look running on another CPU between the two
// finds nothing ready, and the frame then waited for the next signal
// (measured: about one UDP ping-pong in 2000 stalled 0.5 s). The frame is
// already queued when the signal is sent, so a read() always finds it.
// Sockets wake epoll first and signal after, so they are safe in the set.
//
// While a look runs, SIGIO is held back (pthread_sigmask). Most signals
// are raised by our own work (a connect() or a frame written to the tap
// runs the peer's side in the kernel at once, and its answer signals us
// while we are still here); held back they merge into one pending signal,
// which the look takes (sigtimedwait) instead of letting it be delivered,
// and looks once more. A look that has run for MAX_TURN_MS stops, even in
// the middle of a flood of events, so Bun's loop (its timers, its own I/O)
// gets its turn: a pending signal is let through and brings us back, and
// events epoll may still hold (already signalled, so no new signal comes
// for them) are looked at again from setImmediate.
//
// A handler that throws is a bug, but it must not end the process (any
// local client could then take every flow down with it): the throw is
// confined to that handler's flow. The reactor reports it to its fault
// sink (counted and logged by the host) and calls the handler's onFault(),
// which closes the flow (a TCP socket is reset); the look goes on with the
// next event, so the device, the listeners and every other flow keep
// working. A handler whose onFault() throws too (or that has none) is no
// longer called.
//
// Edge-triggered: an event says "became ready"; the handler reads or writes
// until EAGAIN or until it chooses to stop (its own backpressure), and
// remembers that the fd is still ready in the latter case. No epoll_ctl
// call is needed to pause or resume a flow.
import { Epoll } from "../../ffi/epoll.ts";
import { closeFd, holdSigio, signalDrivenIo, takePendingSigio } from "../../ffi/sys.ts";

export { EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, EPOLLRDHUP } from "../../ffi/epoll.ts";
import { EPOLLET, EPOLLIN } from "../../ffi/epoll.ts";

export interface IoHandler {
  /** `events` is the epoll mask (EPOLLIN, EPOLLOUT, EPOLLERR, ...). */
  onIo(events: number): void;
  /**
   * onIo() threw (a bug, already reported): close this handler's flow, so
   * nothing is left half-handled. A shared fd (a listener, the device)
   * stays open and picks up what it may have left unread.
   */
  onFault?(error: unknown): void;
}

/** Where a handler that threw is reported (Stats has this shape). */
export interface FaultSink {
  /** May rethrow `error` (tests without a listener want to see it). */
  fault(where: string, error: unknown): void;
}

/** Until setFaultSink(): a handler that throws ends the look with its error. */
const RETHROW: FaultSink = {
  fault(_where: string, error: unknown): void {
    throw error;
  },
};

/** Events handed out per epoll_wait; more are fetched by the next call. */
const BATCH = 128;
/** The longest one look keeps the event loop (ms): Bun's own timers and I/O wait meanwhile. */
const MAX_TURN_MS = 2;

export class Reactor {
  private readonly epoll = new Epoll(BATCH);
  private readonly handlers: (IoHandler | undefined)[] = [];
  /** Handlers run on every wakeup (addSignalled). */
  private readonly signalled: IoHandler[] = [];
  /** Registration token per fd: an event for an fd number that was closed and reused is dropped. */
  private readonly tokens: number[] = [];
  private nextToken = 1;
  private dispatching = false;
  private dirty = false;
  private lookQueued = false;
  private started = false;
  private stopped = false;
  /** A signal listener does not keep Bun's event loop alive; this timer (once in 24 days) does. */
  private keepAlive: ReturnType<typeof setInterval> | null = null;
  private readonly tid = process.pid; // the main thread's tid is the pid
  /** Follow-up work the handlers queued (the engine's deferred flush), run inside the look. */
  private settle: (() => void) | null = null;
  private faults: FaultSink = RETHROW;

  /** Where handlers that throw are reported ("io-handler"). */
  setFaultSink(sink: FaultSink): void {
    this.faults = sink;
  }

  /**
   * Runs `fn` after each round of a look, while SIGIO is still held: the
   * frames it sends are answered inside the look too.
   */
  setSettle(fn: () => void): void {
    this.settle = fn;
  }

  /** Listens for SIGIO. Before any add(): SIGIO's default action ends the process. */
  start(): void {
    if (this.started) return;
    this.started = true;
    process.on("SIGIO", this.look);
    this.keepAlive = setInterval(() => {}, 2 ** 31 - 1);
  }

  /**
   * Watches a non-blocking fd for `events` (edge-triggered) until remove().
   * Returns 0 or -errno (the fd is then not watched).
   */
  add(fd: number, events: number, handler: IoHandler): number {
    const async = signalDrivenIo(fd, this.tid);
    if (async < 0) return async;
    const token = this.nextToken;
    this.nextToken = (this.nextToken + 1) >>> 0 || 1;
    const r = this.epoll.add(fd, (events | EPOLLET) >>> 0, token);
    if (r < 0) return r;
    this.handlers[fd] = handler;
    this.tokens[fd] = token;
    this.dirty = true;
    if (!this.dispatching && !this.lookQueued) {
      this.lookQueued = true;
      queueMicrotask(this.queuedLook);
    }
    return 0;
  }

  /**
   * Puts fd in signal-driven mode without an epoll registration: `handler`
   * runs (with EPOLLIN) on every wakeup and reads until EAGAIN. For the
   * frame device; see the top of this file for why.
   */
  addSignalled(fd: number, handler: IoHandler): number {
    const async = signalDrivenIo(fd, this.tid);
    if (async < 0) return async;
    this.signalled.push(handler);
    return 0;
  }

  removeSignalled(handler: IoHandler): void {
    const i = this.signalled.indexOf(handler);
    if (i >= 0) this.signalled.splice(i, 1);
  }

  /** Forgets fd. Closing it takes it out of the epoll set (we never dup our fds). */
  remove(fd: number): void {
    this.handlers[fd] = undefined;
    this.tokens[fd] = 0;
  }

  /** remove() and close(). */
  close(fd: number): void {
    this.remove(fd);
    closeFd(fd);
  }

  private readonly queuedLook = (): void => {
    this.lookQueued = false;
    this.look();
  };

  /** Hands out every ready event until epoll has none left. */
  private readonly look = (): void => {
    if (this.stopped) return;
    if (this.dispatching) {
      // Called from inside a handler: the running loop looks once more.
      this.dirty = true;
      return;
    }
    this.dispatching = true;
    holdSigio(true);
    let unfinished = false;
    try {
      const until = performance.now() + MAX_TURN_MS;
      for (;;) {
        for (const h of this.signalled) {
          try {
            h.onIo(EPOLLIN);
          } catch (e) {
            this.fault(-1, h, e);
          }
        }
        unfinished = this.dispatch(until);
        this.settle?.();
        // Time is up: a signal still pending is delivered as we let it
        // through, and Bun's loop (its timers, its own I/O) runs first.
        if (performance.now() >= until) break;
        if (unfinished || this.dirty) continue;
        // Signals raised by what we just handled are taken, not delivered;
        // taking one means something may have come since: look again.
        if (!takePendingSigio()) break;
      }
    } finally {
      this.dispatching = false;
      holdSigio(false);
    }
    if ((unfinished || this.dirty) && !this.lookQueued && !this.stopped) {
      this.lookQueued = true;
      setImmediate(this.queuedLook);
    }
  };

  /**
   * Asks epoll what is ready and hands out events until none are left or
   * the time is up. Returns true if it stopped with events possibly left.
   */
  private dispatch(until: number): boolean {
    const ep = this.epoll;
    let n: number;
    do {
      this.dirty = false;
      n = ep.wait(0);
      for (let i = 0; i < n; i++) {
        const fd = ep.fdAt(i);
        const h = this.handlers[fd];
        if (h === undefined || this.tokens[fd] !== ep.tokenAt(i)) continue;
        try {
          h.onIo(ep.eventsAt(i));
        } catch (e) {
          this.fault(fd, h, e);
        }
      }
      if ((n === BATCH || this.dirty) && performance.now() >= until) return true;
    } while (n === BATCH || this.dirty);
    return false;
  }

  /**
   * Runs `h.onIo(events)` from outside a look (a timer or setImmediate of
   * the handler's own), with the same confinement of a throw.
   */
  call(fd: number, h: IoHandler, events: number): void {
    try {
      h.onIo(events);
    } catch (e) {
      this.fault(fd, h, e);
    }
  }

  /**
   * `h` (watching fd; -1 for a signalled one) threw: report it and let it
   * close its flow. If that throws as well, `h` is not called again (its
   * fd, if any, stays open: closing an fd its owner may still close would
   * risk closing a reused number).
   */
  private fault(fd: number, h: IoHandler, error: unknown): void {
    this.faults.fault("io-handler", error);
    if (h.onFault !== undefined) {
      try {
        h.onFault(error);
        return;
      } catch (again) {
        this.faults.fault("io-handler", again);
      }
    }
    if (fd < 0) this.removeSignalled(h);
    else if (this.handlers[fd] === h) this.remove(fd);
  }

  /**
   * Stops handing out events. The SIGIO listener stays: sockets still open
   * may signal until the process exits, and the default action would kill
   * it.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.keepAlive !== null) clearInterval(this.keepAlive);
    this.epoll.close();
  }
}
