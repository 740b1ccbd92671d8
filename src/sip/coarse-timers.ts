// Many timers of one fixed delay, coalesced: items added within `slackMs` of each other share a bucket and one
// Node timer fires them all, between delayMs and delayMs + slackMs after each was added. There is no cancel: the
// callback checks whether the timer still applies (a transaction checks its state), so an obsolete entry costs
// one array slot until its bucket fires.
// Why: every transaction ends in a linger state (RFC 3261 Timers D, H, I, J, K, L, M: up to 64*T1 = 32 s). A Node
// Timeout for each (~150 bytes with its argument array, a timer-list insert) outlived the young generation four
// times per call and was promoted — at 400 calls/s some 40 000 of them were alive (bench/RESULTS.md item 19).
// Keep the slack small (the transaction layer uses 10 ms): a bucket's items all fire in one go, and 100-ms buckets
// at 750 calls/s ended ~300 transactions at once — a stall that raised the added p99 (item 19).
// Buckets are grouped by Date.now() (a clock step only regroups items; the firing delay is the Node timer's).

type Bucket<T> = { items: T[]; timer: NodeJS.Timeout | undefined };

export class CoarseTimers<T> {
  private open: Bucket<T> | undefined;
  private openedAt = 0;
  private readonly pending = new Set<Bucket<T>>();

  /** `slackMs` 0: one Node timer per item, exactly delayMs (what tests of the RFC timers want). */
  constructor(readonly delayMs: number, private readonly slackMs: number, private readonly fire: (item: T) => void,
    private readonly onError: (err: unknown) => void) {}

  add(item: T): void {
    const now = Date.now();
    let b = this.open;
    if (b === undefined || now < this.openedAt || now - this.openedAt >= this.slackMs) {
      b = { items: [], timer: undefined };
      b.timer = setTimeout(CoarseTimers.run, this.delayMs + this.slackMs, this, b);
      this.open = b;
      this.openedAt = now;
      this.pending.add(b);
    }
    b.items.push(item);
  }

  private static run<T>(ct: CoarseTimers<T>, b: Bucket<T>): void {
    ct.pending.delete(b);
    if (ct.open === b) ct.open = undefined;
    for (const item of b.items) {
      try { ct.fire(item); } catch (e) { ct.onError(e); }
    }
  }

  /** Items waiting (obsolete ones included). */
  get size(): number {
    let n = 0;
    for (const b of this.pending) n += b.items.length;
    return n;
  }

  /** Drops every pending item without firing it. */
  close(): void {
    for (const b of this.pending) clearTimeout(b.timer);
    this.pending.clear();
    this.open = undefined;
  }
}
