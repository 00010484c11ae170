// The global budget for TCP buffer storage: send buffers, receive buffers
// and out-of-order data of every connection together. Without it, every
// guest connection could hold its full send and receive buffers (a guest
// that opens thousands of downloads and never reads made the process
// grow by gigabytes).
//
// What is counted is storage, not content: a ring that grew to 1 MiB and
// holds one byte still holds 1 MiB. Each connection's first
// MIN_CONN_BYTES are its own and not charged: whatever others hold, every
// connection can always buffer that much, so none waits forever for a
// window or for room to read its host socket. Beyond them, storage comes
// from the budget:
//  - below half the budget, a connection may take what it needs (up to
//    its configured buffer sizes);
//  - from half on ("pressure"), each growth is at most a fair share of
//    what remains: the free bytes divided among the connections that
//    hold budget storage (itself included);
//  - at the limit, nothing more is given.
// The owners turn that into behaviour: the receive window we announce is
// cut to storage the budget allows, the host socket is not read while the
// send buffer cannot grow, and guest data that does not fit (a window
// advertised before the budget ran out is never retracted) is dropped, in
// order or not, as Linux drops what its memory limits refuse: the guest
// sends it again. The storage held is therefore at most the budget plus
// MIN_CONN_BYTES per connection.

/** Storage every connection may hold outside the budget (send, receive and out-of-order together). */
export const MIN_CONN_BYTES = 16 * 1024;

export class BufferBudget {
  /** Bytes charged: what accounts hold beyond their MIN_CONN_BYTES. */
  used = 0;
  /** Accounts with a charge (the fair share divides among them). */
  chargers = 0;

  constructor(
    /** The budget, bytes. */
    readonly limit: number,
    /** Told of every refusal (the owner's stats.limit). */
    private readonly onRefused: () => void,
  ) {}

  /** A growth or a window was cut short by the budget. */
  refused(): void {
    this.onRefused();
  }
}

/** One connection's share of the budget. */
export class BudgetAccount {
  /** Storage held by this connection's buffers, bytes. */
  held = 0;

  constructor(private readonly budget: BufferBudget) {}

  private get charged(): number {
    return Math.max(0, this.held - MIN_CONN_BYTES);
  }

  /** Half the budget or more is in use: fair shares apply. */
  get underPressure(): boolean {
    return this.budget.used >= this.budget.limit / 2;
  }

  /** How many more bytes of storage this account may take now. */
  get grantable(): number {
    const b = this.budget;
    const free = b.limit - b.used;
    let g = free;
    if (this.underPressure) g = Math.floor(free / (b.chargers + (this.held > MIN_CONN_BYTES ? 0 : 1)));
    return Math.max(0, MIN_CONN_BYTES - this.held) + Math.max(0, g);
  }

  /** Takes `n` bytes of storage whatever the budget says (data already accepted must be stored). */
  charge(n: number): void {
    const b = this.budget;
    const before = this.charged;
    this.held += n;
    const after = this.charged;
    if (before === 0 && after > 0) b.chargers++;
    b.used += after - before;
  }

  /** Takes `n` bytes if the budget allows; else reports the refusal and returns false. */
  tryCharge(n: number): boolean {
    if (n > this.grantable) {
      this.budget.refused();
      return false;
    }
    this.charge(n);
    return true;
  }

  /** Gives back `n` bytes of storage. */
  release(n: number): void {
    const b = this.budget;
    const before = this.charged;
    this.held -= n;
    const after = this.charged;
    if (before > 0 && after === 0) b.chargers--;
    b.used -= before - after;
  }

  /** A window or buffer was cut short by the budget (counted as a limit hit). */
  refused(): void {
    this.budget.refused();
  }
}
