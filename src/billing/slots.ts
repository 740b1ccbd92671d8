// Simultaneous-call accounting per account: a slot is taken when a call is authorised and given back when
// it fails or ends. Three independent ways free a slot, so none can leak: the release() callback the proxy
// calls, the call's own events (failed / ended, by Call-ID), and a deadline (setup timeout while ringing,
// maximum lifetime once answered). Releasing twice is harmless.
// A call is its Call-ID and the caller's From tag: several calls may share a Call-ID (a caller chooses it), so an
// event of one of them must never free the others' slots (that would let a customer lift its own call limit and
// its held credit by reusing one Call-ID). A slot taken without a tag matches any tag of its Call-ID.

export interface SlotOptions {
  /** Slot freed if the call is neither answered nor finished within this time. */
  setupTimeoutMs: number;
  /** Slot freed this long after answer at the latest (the dialog's lifetime plus slack). */
  answeredTimeoutMs: number;
  /** Called when a deadline had to free a slot (a missing release or event: worth a log line). */
  onLeak?: (slot: { callId: string; accountcode: string; answered: boolean }) => void;
}

/** A restored call's slot outlives its remaining time by this much before the deadline frees it. */
const ADOPT_SLACK_MS = 300_000;

interface Slot {
  id: number;
  callId: string;
  /** The caller's From tag; undefined = any call of the Call-ID. */
  tag: string | undefined;
  accountcode: string;
  answered: boolean;
  timer: NodeJS.Timeout | undefined;
  released: boolean;
  /** Credit held for this call (money units), when credit reservation is on. */
  reserved: bigint;
}

export class CallSlots {
  private readonly byAccount = new Map<string, number>();
  private readonly heldByAccount = new Map<string, bigint>();
  private readonly byCall = new Map<string, Slot[]>();
  private nextId = 1;
  private size = 0;

  constructor(private readonly opts: SlotOptions) {}

  /** Calls currently counted for an account. */
  count(accountcode: string): number {
    return this.byAccount.get(accountcode) ?? 0;
  }

  /** Credit held by an account's calls in progress (money units). */
  reserved(accountcode: string): bigint {
    return this.heldByAccount.get(accountcode) ?? 0n;
  }

  /** Slots held in total. */
  get total(): number {
    return this.size;
  }

  /**
   * Takes a slot when the account has fewer than `limit` calls (0 = no limit, but still counted).
   * Returns the release function, or undefined when the limit is reached.
   */
  tryAcquire(callId: string, accountcode: string, limit: number, reserve = 0n, tag?: string): (() => void) | undefined {
    if (limit > 0 && this.count(accountcode) >= limit) return undefined;
    const slot = this.take(callId, tag, accountcode);
    if (reserve > 0n) {
      slot.reserved = reserve;
      this.heldByAccount.set(accountcode, this.reserved(accountcode) + reserve);
    }
    this.arm(slot, this.opts.setupTimeoutMs);
    return () => this.release(slot);
  }

  /** Counts a call that is already up (a dialog restored after a restart); expires after `remainingMs`. */
  adopt(callId: string, accountcode: string, remainingMs: number, tag?: string): void {
    if (this.of(callId, tag).some((s) => s.accountcode === accountcode)) return;
    const slot = this.take(callId, tag, accountcode);
    slot.answered = true;
    this.arm(slot, Math.max(0, remainingMs) + ADOPT_SLACK_MS);
  }

  /** The call was answered: its slot now lives until the call ends (or the lifetime deadline). */
  answered(callId: string, tag?: string): void {
    for (const s of this.of(callId, tag)) {
      if (s.answered) continue;
      s.answered = true;
      this.arm(s, this.opts.answeredTimeoutMs);
    }
  }

  /** The call failed before answer: free its unanswered slots. */
  failed(callId: string, tag?: string): void {
    for (const s of this.of(callId, tag)) if (!s.answered) this.release(s);
  }

  /**
   * The call ended: free every slot of it. `tags` are the candidates for the caller's tag, best first (a BYE from
   * the callee carries it as To tag): the first that names a call wins, so one end frees one call. When none
   * does, the Call-ID's slots are freed only if they all belong to one call.
   */
  ended(callId: string, tags?: readonly string[]): void {
    const list = this.byCall.get(callId);
    if (!list) return;
    let victims: Slot[] = [];
    if (tags) for (const t of tags) if ((victims = this.of(callId, t)).length > 0) break;
    if (victims.length === 0 && (!tags || list.every((s) => s.tag === list[0]!.tag))) victims = list.slice();
    for (const s of victims) this.release(s);
  }

  /** Frees everything and clears the timers. */
  close(): void {
    for (const list of [...this.byCall.values()]) for (const s of list.slice()) this.release(s);
  }

  /** Slots of the call (Call-ID, caller tag); every slot of the Call-ID when tag is undefined. A copy. */
  private of(callId: string, tag: string | undefined): Slot[] {
    const list = this.byCall.get(callId);
    if (!list) return [];
    return tag === undefined ? list.slice() : list.filter((s) => s.tag === undefined || s.tag === tag);
  }

  private take(callId: string, tag: string | undefined, accountcode: string): Slot {
    const slot: Slot = { id: this.nextId++, callId, tag, accountcode, answered: false, timer: undefined, released: false, reserved: 0n };
    this.byAccount.set(accountcode, this.count(accountcode) + 1);
    const list = this.byCall.get(callId);
    if (list) list.push(slot);
    else this.byCall.set(callId, [slot]);
    this.size++;
    return slot;
  }

  private arm(slot: Slot, ms: number): void {
    if (slot.timer) clearTimeout(slot.timer);
    // setTimeout overflows past 2^31-1 ms (~24.8 days): clamp, a lifetime that long is never configured.
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      if (slot.released) return;
      this.opts.onLeak?.({ callId: slot.callId, accountcode: slot.accountcode, answered: slot.answered });
      this.release(slot);
    }, Math.min(ms, 2 ** 31 - 1));
    slot.timer.unref();
  }

  private release(slot: Slot): void {
    if (slot.released) return;
    slot.released = true;
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = undefined;
    if (slot.reserved > 0n) {
      const held = this.reserved(slot.accountcode) - slot.reserved;
      if (held > 0n) this.heldByAccount.set(slot.accountcode, held);
      else this.heldByAccount.delete(slot.accountcode);
    }
    const n = this.count(slot.accountcode) - 1;
    if (n > 0) this.byAccount.set(slot.accountcode, n);
    else this.byAccount.delete(slot.accountcode);
    const list = this.byCall.get(slot.callId);
    if (list) {
      const i = list.indexOf(slot);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.byCall.delete(slot.callId);
    }
    this.size--;
  }
}
