// Overload control: which share of new calls the proxy takes on, from how long datagrams wait before it reads
// them (sip/queue-probe.ts). Past its capacity a single event loop does not slow down gracefully: the socket
// buffer fills with seconds of traffic, every message waits that long — BYEs too, and the billed duration ends
// when the gateway sees the BYE — callers retransmit after T1 (500 ms) and add load, and calls fail by timeout
// (bench/RESULTS.md item 17: at 2× its sustainable rate the gateway held messages for a median of ~1 s).
// So while the measured delay is above the target, a shrinking share of *new* INVITEs is answered 503 +
// Retry-After at once — a few tens of µs against ~1 ms for a call — and everything in a dialog, ACK, CANCEL and
// every response goes on as before. Additive increase, multiplicative decrease (RFC 7339's loss-based scheme,
// decided locally); admissions are spread evenly (a credit counter, no randomness). The target (300 ms by
// default) stays under T1 with the controller's overshoot, so callers do not start retransmitting INVITEs.

export interface OverloadOptions {
  /** Queue delay above which the admitted share shrinks. */
  targetDelayMs: number;
}

/**
 * Share kept per measurement over the target (from the second one in a row: one GC pause is not overload):
 * target/delay, between these bounds — just over the target trims, far over halves (a flood starting at 3× the
 * capacity must be cut within a few hundred ms, before the queue passes T1).
 */
const DECREASE_MIN = 0.5;
const DECREASE_MAX = 0.9;
/** Share given back per measurement under half the target (the probe measures every ~50 ms: full in ~1 s). */
const INCREASE = 0.05;
/** Below this the share is zero: no new call until the queue drains. */
const FLOOR = 0.02;

export interface OverloadState {
  /** Share of new INVITEs admitted now (1: no overload). */
  admitShare: number;
  /** Last queue delay measured (ms). */
  delayMs: number;
  /** New INVITEs answered 503 since start. */
  rejected: number;
}

export class AdmissionControl {
  private share = 1;
  private credit = 0;
  private delay = 0;
  private rejectedCount = 0;
  /** Consecutive measurements over the target. */
  private over = 0;

  constructor(private readonly o: OverloadOptions, private readonly onChange?: (overloaded: boolean, s: OverloadState) => void) {}

  /** A queue-delay measurement (ms). */
  observe(ms: number): void {
    this.delay = ms;
    const before = this.share;
    if (ms > this.o.targetDelayMs) {
      if (++this.over >= 2) {
        const next = before * Math.min(DECREASE_MAX, Math.max(DECREASE_MIN, this.o.targetDelayMs / ms));
        this.share = next < FLOOR ? 0 : next;
      }
      return this.changed(before);
    }
    this.over = 0;
    if (ms < this.o.targetDelayMs / 2 && before < 1) {
      this.share = Math.min(1, before + INCREASE);
      if (this.share === 1) this.credit = 0;
    }
    this.changed(before);
  }

  private changed(before: number): void {
    if ((before === 1) !== (this.share === 1)) this.onChange?.(this.share < 1, this.state());
  }

  /** May one more new call in? (Only ask for initial INVITEs that passed screening.) */
  admit(): boolean {
    if (this.share >= 1) return true;
    this.credit += this.share;
    if (this.credit >= 1) {
      this.credit -= 1;
      return true;
    }
    this.rejectedCount++;
    return false;
  }

  /** Share of new INVITEs admitted now (1: no overload). */
  get admitShare(): number { return this.share; }

  state(): OverloadState {
    return { admitShare: this.share, delayMs: this.delay, rejected: this.rejectedCount };
  }
}
