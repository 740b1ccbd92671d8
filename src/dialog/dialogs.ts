// The dialog table, like OpenSIPS's dialog module: early dialogs from the INVITE, confirmed dialogs from the
// 2xx (with the proxy's snapshot: route sets, hops, CSeqs), terminated on BYE or when their time is up.
//
// Limits: every confirmed dialog ends at answer + min(maxDurationSec from authorize, dialog.defaultMaxLifetimeSec);
// the timer calls ProxyActions.endDialog(dialog, 'max-duration') (BYE to both sides) and then emits the `ended`
// event the proxy does not emit for dialogs it was told to end (the acc writer closes the CDR from it).
//
// Persistence (survives SIGKILL and restarts; see NOTES-dialog.md):
//  - the local state file (dialog.stateDir) gets the snapshot within ~10 ms of the 2xx, CSeq changes debounced
//    (dialog.cseqFlushMs), deletions as tombstones until gw_dialog has confirmed them;
//  - gw_dialog gets the same in batches every dialog.dbFlushMs (shared, survives a lost disk);
//  - restore() merges both (newer `updated` wins, tombstones win over older copies), re-arms every timer from
//    its absolute expiry and ends at once those that expired while the gateway was down.
import type { Config } from '../config/schema.js';
import type { Db } from '../db/pool.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { CallEvent, DialogInfo, EndReason, ProxyActions } from '../proxy/hooks.js';
import { DialogDbWriter } from './db-writer.js';
import { DLG_STATE, RECORD_VERSION, cloneDialogInfo, dialogKey, isDialogRecord, type DialogRecord } from './record.js';
import { StateFile, type DialogStateStore, type StateLine } from './state-file.js';

/** CSeqs of restored dialogs are raised by this much: changes inside the debounce window may not have been saved. */
export const CSEQ_RESTORE_BUMP = 100;
/** Early dialogs and pending limits older than this are dropped (an INVITE never rings that long). */
const EARLY_TTL_MS = 15 * 60_000;
const SWEEP_MS = 60_000;
/** Longest close() waits for dialogs being ended to settle. */
const CLOSE_WAIT_MS = 2000;
/** setTimeout's ceiling; longer delays are re-armed in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface DialogsOptions {
  dialog: Config['dialog'];
  /** endDialog sends BYE to both sides (ProxyActions from the proxy). */
  actions: Pick<ProxyActions, 'endDialog'>;
  /** gw_dialog; without it only the state file is used. */
  db?: Db;
  log: Logger;
  metrics?: Metrics;
  /**
   * Receives the `ended` event of every dialog Dialogs ends itself (max-duration, admin), once endDialog has
   * settled, unless the proxy already reported `ended` for it meanwhile. Wire it to the call-event fan-out.
   */
  emit?: (ev: CallEvent) => void;
  /** Clock (ms since epoch), for tests. */
  now?: () => number;
  /** Local store; default the state file in dialog.stateDir. */
  store?: DialogStateStore;
}

export type DialogState = 'early' | 'confirmed' | 'terminating';

/** One line of the management listing. */
export interface DialogView {
  callId: string;
  state: DialogState;
  accountcode: string;
  callerTag: string;
  calleeTag: string;
  targetId: string;
  createdAt: number;
  answeredAt?: number;
  expiresAt?: number;
  maxDurationSec?: number;
}

interface Confirmed {
  rec: DialogRecord;
  timer: NodeJS.Timeout | undefined;
  terminating: Promise<void> | undefined;
  /** The proxy reported `ended` while we were ending it: do not emit a second one. */
  endedElsewhere: boolean;
}

interface Early {
  callId: string;
  callerTag: string;
  accountcode: string;
  createdAt: number;
}

export class Dialogs {
  private readonly cfg: Config['dialog'];
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly file: DialogStateStore;
  private readonly dbw: DialogDbWriter | undefined;
  private readonly confirmed = new Map<string, Confirmed>();
  private readonly byCall = new Map<string, Confirmed[]>();
  private readonly early = new Map<string, Early>();
  private readonly limits = new Map<string, { sec: number; at: number }>();
  /** Deleted dialogs whose gw_dialog row may still exist: key → deletion time. */
  private readonly tombstones = new Map<string, number>();
  private readonly dirty = new Set<Confirmed>();
  private cseqTimer: NodeJS.Timeout | undefined;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;
  private compacting: Promise<void> | undefined;
  /** Call-IDs that ended (BYE) before restore() finished: not resurrected by it. Bounded; dropped after restore. */
  private endedEarly: Set<string> | undefined = new Set();

  constructor(private readonly opts: DialogsOptions) {
    this.cfg = opts.dialog;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.file = opts.store ?? new StateFile({ dir: opts.dialog.stateDir, log: opts.log, metrics: opts.metrics });
    this.dbw = opts.db
      ? new DialogDbWriter({
        db: opts.db, log: opts.log, metrics: opts.metrics, flushMs: opts.dialog.dbFlushMs,
        onDeleted: (keys) => { for (const k of keys) this.tombstones.delete(k); },
      })
      : undefined;
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  /** Confirmed dialogs (the a2b_dialogs_active gauge). */
  get activeCount(): number {
    return this.confirmed.size;
  }

  /**
   * The maximum duration authorize gave this call, applied when it is answered. Only needed when the proxy
   * does not carry it on the `answered` event (which wins when present).
   */
  setMaxDuration(callId: string, maxDurationSec: number | undefined): void {
    if (maxDurationSec === undefined) this.limits.delete(callId);
    else this.limits.set(callId, { sec: maxDurationSec, at: this.now() });
  }

  /** The onCallEvent hook. Never throws, never blocks. */
  onCallEvent(ev: CallEvent): void {
    if (this.closed) return;
    try {
      switch (ev.type) {
        case 'start':
          this.early.set(ev.facts.callId, { callId: ev.facts.callId, callerTag: ev.facts.fromTag, accountcode: ev.auth?.accountcode ?? '', createdAt: ev.at });
          break;
        case 'failed':
          this.early.delete(ev.facts.callId);
          this.limits.delete(ev.facts.callId);
          break;
        case 'answered':
          this.answered(ev.dialog, ev.at, ev.maxDurationSec);
          break;
        case 'in-dialog':
          this.inDialog(ev.callId, ev.fromTag, ev.toTag, ev.cseq, ev.fromCaller);
          break;
        case 'ended':
          this.ended(ev.callId, ev.fromTag, ev.toTag, ev.reason);
          break;
        default:
          break;
      }
    } catch (e) {
      this.log.error({ err: (e as Error).message, type: ev.type }, 'dialog bookkeeping failed');
    }
  }

  /**
   * Loads the dialogs saved by the previous run (state file and gw_dialog), re-arms their timers and ends
   * at once those whose time ran out while the gateway was down. Call once, before taking traffic.
   * Returns how many confirmed dialogs were recovered (the expired ones included: they are being ended).
   */
  async restore(): Promise<number> {
    const loaded = await this.file.load().catch((e: unknown) => {
      this.log.error({ path: this.file.path, err: (e as Error).message }, 'dialog state file unreadable; restoring from gw_dialog only');
      return { records: new Map<string, DialogRecord>(), tombstones: new Map<string, number>(), badLines: 0 };
    });
    const records = loaded.records;
    // Tombstones only matter while gw_dialog may still hold the row.
    if (this.dbw) for (const [k, t] of loaded.tombstones) this.tombstones.set(k, t);
    let fromDb = 0;
    if (this.dbw) {
      try {
        for (const row of await this.dbw.load(DLG_STATE.confirmed, 5000)) {
          let rec: unknown;
          try {
            rec = JSON.parse(row.data);
          } catch {
            continue;
          }
          if (!isDialogRecord(rec) || rec.instance !== this.cfg.instance || rec.key !== row.dlg_key) continue;
          const dead = this.tombstones.get(rec.key);
          if (dead !== undefined && dead >= rec.updated) continue;
          const mine = records.get(rec.key);
          if (mine && mine.updated >= rec.updated) continue;
          records.set(rec.key, rec);
          this.tombstones.delete(rec.key);
          fromDb++;
        }
      } catch (e) {
        this.log.warn({ err: (e as Error).message }, 'gw_dialog unreadable; restoring from the state file only');
      }
    }
    const now = this.now();
    const expired: Confirmed[] = [];
    let restored = 0;
    let foreign = 0;
    for (const rec of records.values()) {
      if (!isDialogRecord(rec) || this.confirmed.has(rec.key)) continue;
      // A gateway restores only its own dialogs (dialog.instance), from either store.
      if (rec.instance !== this.cfg.instance) {
        foreign++;
        continue;
      }
      if (this.endedEarly?.has(rec.info.callId)) {
        // Its BYE passed while we were starting: forget it in both stores.
        const t = Math.max(now, rec.updated + 1);
        if (this.dbw) this.tombstones.set(rec.key, t);
        this.dbw?.delete(rec.key, t);
        continue;
      }
      rec.info.callerCseq += CSEQ_RESTORE_BUMP;
      rec.info.calleeCseq += CSEQ_RESTORE_BUMP;
      rec.updated = now;
      const d = this.add(rec);
      restored++;
      if (rec.expiresAt <= now) expired.push(d);
      else this.arm(d);
      this.dbw?.upsert(rec);
    }
    this.endedEarly = undefined;
    // gw_dialog may still hold rows of dialogs that ended before the crash.
    for (const [k, t] of this.tombstones) this.dbw?.delete(k, t);
    await this.file.compact(this.snapshotLines());
    this.gauge();
    if (foreign > 0) this.log.warn({ foreign, instance: this.cfg.instance, path: this.file.path }, 'state file holds dialogs of another dialog.instance: not restored');
    this.log.info({ restored, expired: expired.length, fromDb, path: this.file.path }, 'dialogs restored');
    for (const d of expired) void this.terminate(d, 'max-duration');
    return restored;
  }

  /** Confirmed and early dialogs, for the management interface. */
  list(): DialogView[] {
    const out: DialogView[] = [];
    for (const e of this.early.values()) {
      out.push({ callId: e.callId, state: 'early', accountcode: e.accountcode, callerTag: e.callerTag, calleeTag: '', targetId: '', createdAt: e.createdAt });
    }
    for (const d of this.confirmed.values()) {
      const i = d.rec.info;
      const v: DialogView = {
        callId: i.callId, state: d.terminating ? 'terminating' : 'confirmed', accountcode: i.accountcode, callerTag: i.callerTag,
        calleeTag: i.calleeTag, targetId: i.targetId, createdAt: i.createdAt, answeredAt: i.answeredAt, expiresAt: d.rec.expiresAt,
      };
      if (d.rec.maxDurationSec !== null) v.maxDurationSec = d.rec.maxDurationSec;
      out.push(v);
    }
    return out;
  }

  /** The saved snapshot of a confirmed dialog (a copy). */
  get(callId: string): DialogInfo | undefined {
    const d = this.byCall.get(callId)?.[0];
    return d ? cloneDialogInfo(d.rec.info) : undefined;
  }

  /**
   * Ends the confirmed dialog(s) of a Call-ID with BYE to both sides (management "end call").
   * Resolves false when there is no confirmed dialog with that Call-ID (early dialogs are not ended here).
   */
  async end(callId: string, reason: EndReason = 'admin'): Promise<boolean> {
    const list = this.byCall.get(callId);
    if (!list || list.length === 0) return false;
    await Promise.all(list.slice().map((d) => this.terminate(d, reason)));
    return true;
  }

  /**
   * A copy of the snapshot of the confirmed dialog these tags name (either order), if exactly one. After a restart
   * the proxy has no snapshot of a restored dialog, so its `ended` comes without one: this completes it, and
   * accounting can still write the call's CDR.
   */
  snapshot(callId: string, fromTag: string, toTag: string): DialogInfo | undefined {
    const found = this.find(callId, fromTag, toTag);
    return found.length === 1 ? cloneDialogInfo(found[0]!.rec.info) : undefined;
  }

  /** Writes every pending change to the state file and gw_dialog now. */
  async flush(): Promise<void> {
    this.flushDirty();
    await this.file.flush();
    await this.dbw?.flush();
  }

  /** Stops timers and saves state; dialogs stay saved for the next start (they are not ended). */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.sweeper);
    for (const d of this.confirmed.values()) if (d.timer) clearTimeout(d.timer);
    // Dialogs being ended (a max-duration BYE fired just before the stop) settle first, up to CLOSE_WAIT_MS: their
    // deletion is saved and their `ended` reaches accounting while it is still open. Otherwise the next start
    // restores them and ends them again, and the CDR's end moves to that restart.
    const ending = [...this.confirmed.values()].map((d) => d.terminating).filter((p) => p !== undefined);
    if (ending.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled(ending), new Promise((r) => { timer = setTimeout(r, CLOSE_WAIT_MS); })]);
      clearTimeout(timer);
    }
    if (this.closed) return;
    this.flushDirty();
    this.closed = true;
    if (this.cseqTimer) clearTimeout(this.cseqTimer);
    await this.file.close();
    await this.dbw?.close();
  }

  // --- events ---

  private answered(info: DialogInfo, at: number, fromEvent: number | undefined): void {
    const key = dialogKey(info.callId, info.callerTag, info.calleeTag);
    this.early.delete(info.callId);
    if (this.confirmed.has(key)) return; // 2xx retransmission or a duplicate event
    // The proxy carries authorize's limit on the event; setMaxDuration() is the same value by another path.
    const limit = fromEvent !== undefined && fromEvent > 0 ? { sec: fromEvent } : this.limits.get(info.callId);
    this.limits.delete(info.callId);
    const answeredAt = info.answeredAt || at || this.now();
    const lifetimeSec = limit ? Math.min(limit.sec, this.cfg.defaultMaxLifetimeSec) : this.cfg.defaultMaxLifetimeSec;
    const rec: DialogRecord = {
      v: RECORD_VERSION, key, instance: this.cfg.instance, info: cloneDialogInfo(info),
      expiresAt: answeredAt + lifetimeSec * 1000, maxDurationSec: limit ? limit.sec : null, updated: this.now(),
    };
    const d = this.add(rec);
    this.arm(d);
    this.save(d);
    this.gauge();
  }

  private inDialog(callId: string, fromTag: string, toTag: string, cseq: number, fromCaller: boolean): void {
    for (const d of this.find(callId, fromTag, toTag)) {
      const i = d.rec.info;
      if (fromCaller ? cseq <= i.callerCseq : cseq <= i.calleeCseq) continue;
      if (fromCaller) i.callerCseq = cseq;
      else i.calleeCseq = cseq;
      this.dirty.add(d);
      if (!this.cseqTimer) {
        this.cseqTimer = setTimeout(() => {
          this.cseqTimer = undefined;
          this.flushDirty();
        }, this.cfg.cseqFlushMs);
        this.cseqTimer.unref();
      }
    }
  }

  private ended(callId: string, fromTag: string, toTag: string, reason: EndReason): void {
    if (this.endedEarly && this.endedEarly.size < 10_000) this.endedEarly.add(callId);
    this.early.delete(callId);
    this.limits.delete(callId);
    for (const d of this.find(callId, fromTag, toTag)) {
      if (d.terminating) {
        d.endedElsewhere = true;
        continue;
      }
      this.remove(d, reason);
    }
  }

  // --- timers and termination ---

  private arm(d: Confirmed): void {
    if (d.timer) clearTimeout(d.timer);
    const delay = d.rec.expiresAt - this.now();
    d.timer = setTimeout(() => {
      d.timer = undefined;
      if (d.rec.expiresAt - this.now() > 0) this.arm(d); // a step of a very long lifetime
      else void this.terminate(d, 'max-duration');
    }, Math.max(0, Math.min(delay, MAX_TIMER_MS)));
    d.timer.unref();
  }

  /** BYE both sides; the dialog stays saved until endDialog settles, so a crash meanwhile ends it again on restart. */
  private terminate(d: Confirmed, reason: EndReason): Promise<void> {
    if (d.terminating) return d.terminating;
    if (d.timer) clearTimeout(d.timer);
    d.timer = undefined;
    const at = this.now();
    const info = d.rec.info;
    this.log.info({ callId: info.callId, accountcode: info.accountcode, reason }, 'ending dialog: BYE to both sides');
    // endDialog runs one microtask later, so `terminating` is set before the proxy's own `ended` (which it emits
    // synchronously inside endDialog) comes back through onCallEvent.
    d.terminating = Promise.resolve().then(async () => {
      try {
        await this.opts.actions.endDialog(cloneDialogInfo(info), reason);
      } catch (e) {
        this.log.error({ callId: info.callId, err: (e as Error).message }, 'endDialog failed');
      }
      if (this.confirmed.get(d.rec.key) !== d) return;
      this.remove(d, reason);
      if (!d.endedElsewhere && this.opts.emit) {
        try {
          this.opts.emit({ type: 'ended', callId: info.callId, fromTag: info.callerTag, toTag: info.calleeTag, reason, at, dialog: cloneDialogInfo(info) });
        } catch (e) {
          this.log.error({ callId: info.callId, err: (e as Error).message }, 'ended event consumer failed');
        }
      }
    });
    return d.terminating;
  }

  // --- table and persistence ---

  private add(rec: DialogRecord): Confirmed {
    const d: Confirmed = { rec, timer: undefined, terminating: undefined, endedElsewhere: false };
    this.confirmed.set(rec.key, d);
    this.tombstones.delete(rec.key);
    const list = this.byCall.get(rec.info.callId);
    if (list) list.push(d);
    else this.byCall.set(rec.info.callId, [d]);
    return d;
  }

  private remove(d: Confirmed, reason: EndReason): void {
    if (this.confirmed.get(d.rec.key) !== d) return;
    if (d.timer) clearTimeout(d.timer);
    d.timer = undefined;
    this.confirmed.delete(d.rec.key);
    this.dirty.delete(d);
    const list = this.byCall.get(d.rec.info.callId);
    if (list) {
      const i = list.indexOf(d);
      if (i >= 0) list.splice(i, 1);
      if (list.length === 0) this.byCall.delete(d.rec.info.callId);
    }
    const t = Math.max(this.now(), d.rec.updated + 1);
    if (!this.closed) {
      if (this.dbw) this.tombstones.set(d.rec.key, t);
      this.file.append({ op: 'del', key: d.rec.key, updated: t });
      this.dbw?.delete(d.rec.key, t);
      this.maybeCompact();
    }
    this.opts.metrics?.dialogsEnded.inc({ reason });
    this.gauge();
  }

  /** Dialogs of a Call-ID matching the tags in either direction; a lone dialog of the Call-ID otherwise. */
  private find(callId: string, fromTag: string, toTag: string): Confirmed[] {
    const list = this.byCall.get(callId);
    if (!list || list.length === 0) return [];
    const exact = list.filter((d) => {
      const i = d.rec.info;
      return (i.callerTag === fromTag && i.calleeTag === toTag) || (i.callerTag === toTag && i.calleeTag === fromTag);
    });
    if (exact.length > 0) return exact;
    return list.length === 1 ? list.slice() : [];
  }

  private save(d: Confirmed): void {
    if (this.closed) return;
    d.rec.updated = Math.max(this.now(), d.rec.updated);
    const json = JSON.stringify(d.rec); // once, for the state file line and the gw_dialog row
    this.file.append({ op: 'up', rec: d.rec }, json);
    this.dbw?.upsert(d.rec, json);
    this.maybeCompact();
  }

  private flushDirty(): void {
    if (this.cseqTimer) {
      clearTimeout(this.cseqTimer);
      this.cseqTimer = undefined;
    }
    for (const d of this.dirty) this.save(d);
    this.dirty.clear();
  }

  private snapshotLines(): StateLine[] {
    const lines: StateLine[] = [];
    for (const d of this.confirmed.values()) lines.push({ op: 'up', rec: d.rec });
    for (const [key, updated] of this.tombstones) lines.push({ op: 'del', key, updated });
    return lines;
  }

  private maybeCompact(): void {
    if (this.compacting || this.file.lines <= 1000 + 2 * (this.confirmed.size + this.tombstones.size)) return;
    this.compacting = this.file.compact(this.snapshotLines()).finally(() => { this.compacting = undefined; });
  }

  private sweep(): void {
    const old = this.now() - EARLY_TTL_MS;
    for (const [k, e] of this.early) if (e.createdAt < old) this.early.delete(k);
    for (const [k, l] of this.limits) if (l.at < old) this.limits.delete(k);
  }

  private gauge(): void {
    this.opts.metrics?.dialogsActive.set(this.confirmed.size);
  }
}
