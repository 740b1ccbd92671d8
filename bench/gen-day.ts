// Generates a billing day of traffic as the three sources would hold it: gw_cdr (the gateway), gw_ami_cdr and
// gw_ami_session (the AMI connector) and cc_call (A2Billing), with a realistic share of discrepancies, and
// knows which class every call must land in. Writes with multi-row INSERTs on three connections.
//
//   npx tsx bench/gen-day.ts --db mysql://root@127.0.0.1:3306/a2b --date 2026-11-21 --tz Europe/Berlin --calls 1000000
//
// Faults (mutually exclusive, per call): cc_call dropped (unbilled), duration skew, wrong card billed,
// unanswered-but-billed, AMI event lost, bypass (Asterisk + A2Billing, no gateway). Plus normal noise that
// must NOT be reported: retries (+1000000000 uniqueids), two Cdr events per call, cc_call rows without
// a2b_custom1 (joined via AMI's uniqueid), AMI rows without the Call-ID, failed calls, calls around midnight,
// and a 20-minute AMI disconnect of box2 (its calls' missing AMI records are explained).
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { createDb, type Db } from '../src/db/pool.js';
import { INSERT_CARD } from '../src/db/queries/seed.js';
import { priceCall, type RateCard } from '../src/reconcile/rating.js';
import type { CallClass } from '../src/reconcile/types.js';
import { billingWindow, toSqlUtc } from '../src/reconcile/window.js';

export const GEN_RATES: RateCard[] = [
  { plan: 1, prefix: '1', rate: 0.02, initblock: 60, billingblock: 60, connect: 0 },
  { plan: 1, prefix: '44', rate: 0.05, initblock: 30, billingblock: 6, connect: 0 },
  { plan: 1, prefix: '4420', rate: 0.03, initblock: 30, billingblock: 6, connect: 0 },
  { plan: 1, prefix: '33', rate: 0.10, initblock: 60, billingblock: 60, connect: 0.05 },
];
const NUMBERS = ['12125550100', '447700900123', '442079460000', '33612345678'];

export interface GenCard { id: number; username: string }
export interface GenOptions {
  day: string;
  tz: string;
  calls: number;
  seed?: number;
  cards: GenCard[];
  /** Keep the expected class of every call (tests); the bench only needs the counts. */
  keepExpected?: boolean;
  chunk?: number;
  /** Multiplies every fault rate (tests use 10 so that a few thousand calls show every class). */
  faultScale?: number;
}

export interface GwIns { callid: string; callref: string; recKey: string; accountcode: string; created: string; answered: string | null; ended: string; dur: number; sip: number; reason: string; dst: string; destination: string }
export interface AmiIns { box: string; uniqueid: string; sequence: number; accountcode: string; dst: string; start: string; answer: string | null; end: string; duration: number; billsec: number; disposition: string; callid: string }
export interface CcIns { uniqueid: string; cardId: number; start: string; stop: string; sessiontime: number; bill: number; tc: number; called: string; custom1: string | null }
export interface SessionIns { box: string; instance: string; connectedAt: string; disconnectedAt: string | null }
export interface Chunk { gw: GwIns[]; ami: AmiIns[]; cc: CcIns[] }

export interface GenResult {
  expected: Record<CallClass, number>;
  perCall: Map<string, CallClass>;
  sessions: SessionIns[];
  rows: { gw: number; ami: number; cc: number };
  gap: { box: string; from: string; to: string };
}

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ms3 = (t: number): string => new Date(t).toISOString().replace('T', ' ').slice(0, 23);
const s0 = (t: number): string => toSqlUtc(t);

function rateFor(n: string): RateCard {
  let best = GEN_RATES[0]!;
  for (const r of GEN_RATES) if (n.startsWith(r.prefix) && r.prefix.length > best.prefix.length) best = r;
  return best;
}

/** Generates the day chunk by chunk (bounded memory); `sink` writes each chunk. */
export async function generateDay(o: GenOptions, sink: (c: Chunk) => Promise<void>): Promise<GenResult> {
  const rnd = prng(o.seed ?? 42);
  const w = billingWindow(o.day, o.tz);
  const margin = 10 * 60_000;
  const span = w.endMs - w.startMs + 2 * margin;
  const gapFrom = w.startMs + 3600_000;
  const gapTo = gapFrom + 20 * 60_000;
  const sessions: SessionIns[] = [
    { box: 'box1', instance: 'gw-a', connectedAt: ms3(w.startMs - 86400_000), disconnectedAt: null },
    { box: 'box2', instance: 'gw-a', connectedAt: ms3(w.startMs - 86400_000), disconnectedAt: ms3(gapFrom) },
    { box: 'box2', instance: 'gw-a', connectedAt: ms3(gapTo), disconnectedAt: null },
  ];
  const expected = { matched: 0, bypass: 0, unanswered_billed: 0, unbilled: 0, account_mismatch: 0, duration_mismatch: 0, ami_missing_gap: 0, ami_missing: 0 } as Record<CallClass, number>;
  const perCall = new Map<string, CallClass>();
  const rows = { gw: 0, ami: 0, cc: 0 };
  const chunkSize = o.chunk ?? 2000;
  let chunk: Chunk = { gw: [], ami: [], cc: [] };
  let seq = 0;
  for (let i = 0; i < o.calls; i++) {
    // Times are drawn so that calls also start in the 10 minutes before and after the day.
    const t = w.startMs - margin + Math.floor(rnd() * span);
    const inDay = t >= w.startMs && t < w.endMs;
    const ci = Math.floor(rnd() * o.cards.length);
    const card = o.cards[ci]!;
    const other = o.cards[(ci + 1) % o.cards.length]!;
    const boxN = rnd() < 0.5 ? 1 : 2;
    const box = `box${boxN}`;
    const dst = NUMBERS[Math.floor(rnd() * NUMBERS.length)]!;
    const rc = rateFor(dst);
    const callid = `${i.toString(36)}-${Math.floor(rnd() * 1e12).toString(36)}@10.1.${boxN}.${i % 250}`;
    const uniqueid = `${Math.floor(t / 1000)}.${++seq}`;
    // One SHA-256 per call: the call reference is its first 20 hex digits (= callRef(callid)), rec_key its first 32.
    const digest = createHash('sha256').update(callid).digest('hex');
    const ref = digest.slice(0, 20);
    const ring = 1 + Math.floor(rnd() * 9);
    const answeredAt = t + ring * 1000;
    const r = rnd() / (o.faultScale ?? 1);
    const fault = r < 0.005 ? 'drop' : r < 0.008 ? 'skew' : r < 0.009 ? 'wrongcard' : r < 0.0095 ? 'unansbilled' : r < 0.0105 ? 'amilost' : r < 0.0125 ? 'bypass' : 'none';
    const answered = fault === 'unansbilled' ? false : fault === 'none' ? rnd() < 0.88 : true;
    const dur = answered ? 5 + Math.floor(rnd() * 600) : 0;
    const endAt = answered ? answeredAt + dur * 1000 : t + ring * 1000;
    const bill = priceCall(dur, rc);
    const noise = rnd();
    const inGap = boxN === 2 && endAt >= gapFrom - 2000 && endAt < gapTo + 2000;
    const amiPresent = !inGap && fault !== 'amilost' && (answered || noise < 0.5);
    // Cdr events without the Call-ID / cc rows without a2b_custom1 only where the other side carries it.
    const amiNoCallid = amiPresent && fault === 'none' && noise >= 0.97;
    // Some of them are retried calls: their rows (uniqueid + 1000000000) join through the base uniqueid.
    const ccNoCustom1 = amiPresent && !amiNoCallid && fault === 'none' && (noise < 0.01 || (noise >= 0.5 && noise < 0.51));
    const retry = answered && noise >= 0.5 && noise < 0.55;
    const twoCdrs = answered && noise >= 0.55 && noise < 0.6;

    if (fault !== 'bypass') {
      chunk.gw.push({ callid, callref: ref, recKey: digest.slice(0, 32), accountcode: card.username, created: ms3(t), answered: answered ? ms3(answeredAt) : null, ended: ms3(endAt), dur,
        sip: answered ? 200 : 486, reason: answered ? 'bye-caller' : 'failed', dst, destination: `sip:10.0.0.${boxN}:5060;transport=udp` });
    }
    if (amiPresent) {
      const cid = amiNoCallid ? '' : callid;
      if (twoCdrs) {
        chunk.ami.push({ box, uniqueid, sequence: 1, accountcode: card.username, dst, start: s0(t), answer: null, end: s0(t + 2000), duration: 2, billsec: 0, disposition: 'NO ANSWER', callid: cid });
      }
      chunk.ami.push({ box, uniqueid, sequence: twoCdrs ? 2 : 1, accountcode: card.username, dst, start: s0(t), answer: answered ? s0(answeredAt) : null, end: s0(endAt),
        duration: Math.round((endAt - t) / 1000), billsec: dur, disposition: answered ? 'ANSWERED' : 'NO ANSWER', callid: cid });
    }
    const custom1 = fault === 'bypass' || ccNoCustom1 ? null : ref;
    if (fault !== 'drop') {
      if (retry) chunk.cc.push({ uniqueid, cardId: card.id, start: s0(t), stop: s0(t + 1000), sessiontime: 0, bill: 0, tc: 5, called: dst, custom1 });
      const uid = retry ? `${Math.floor(t / 1000) + 1e9}.${seq}` : uniqueid;
      if (answered || fault === 'unansbilled') {
        const billedDur = fault === 'skew' ? Math.max(1, dur - 10 - Math.floor(rnd() * 50)) : fault === 'unansbilled' ? 20 + Math.floor(rnd() * 40) : dur;
        chunk.cc.push({ uniqueid: uid, cardId: fault === 'wrongcard' ? other.id : card.id, start: s0(answeredAt), stop: s0(answeredAt + billedDur * 1000), sessiontime: billedDur,
          bill: fault === 'skew' || fault === 'unansbilled' ? priceCall(billedDur, rc) : bill, tc: 1, called: dst, custom1 });
      } else if (noise < 0.3) {
        chunk.cc.push({ uniqueid: uid, cardId: card.id, start: s0(t), stop: s0(endAt), sessiontime: 0, bill: 0, tc: 2 + (i % 5), called: dst, custom1 });
      }
    }
    const cls: CallClass = fault === 'bypass' ? 'bypass' : fault === 'drop' ? 'unbilled' : fault === 'skew' ? 'duration_mismatch' : fault === 'wrongcard' ? 'account_mismatch'
      : fault === 'unansbilled' ? 'unanswered_billed' : fault === 'amilost' ? (inGap ? 'ami_missing_gap' : 'ami_missing') : !answered ? 'matched' : inGap ? 'ami_missing_gap' : 'matched';
    if (inDay) {
      expected[cls]++;
      if (o.keepExpected) perCall.set(callid, cls);
    }
    if (chunk.gw.length >= chunkSize) {
      rows.gw += chunk.gw.length; rows.ami += chunk.ami.length; rows.cc += chunk.cc.length;
      await sink(chunk);
      chunk = { gw: [], ami: [], cc: [] };
    }
  }
  rows.gw += chunk.gw.length; rows.ami += chunk.ami.length; rows.cc += chunk.cc.length;
  await sink(chunk);
  return { expected, perCall, sessions, rows, gap: { box: 'box2', from: ms3(gapFrom), to: ms3(gapTo) } };
}

// --- writing (simulates what the gateway, the AMI connector and A2Billing write) ---
const GW_INS = 'INSERT INTO gw_cdr (rec_key, callid, callref, created, answered, ended, duration_sec, duration_ms, end_reason, sip_code, accountcode, dst_user, destination) VALUES ';
const AMI_INS = 'INSERT INTO gw_ami_cdr (box, uniqueid, sequence, accountcode, dst, start_time, answer_time, end_time, duration, billsec, disposition, userfield, sip_callid, received_at) VALUES ';
const CC_INS = 'INSERT INTO cc_call (sessionid, uniqueid, card_id, nasipaddress, starttime, stoptime, sessiontime, real_sessiontime, calledstation, sessionbill, src, dnid, terminatecauseid, a2b_custom1) VALUES ';
const SESSION_INS = 'INSERT INTO gw_ami_session (box, instance, connected_at, disconnected_at, reason) VALUES (?, ?, ?, ?, ?)';

function values(n: number, cols: number): string {
  const one = `(${new Array<string>(cols).fill('?').join(',')})`;
  return new Array<string>(n).fill(one).join(',');
}

// LOAD DATA LOCAL INFILE: tab-separated rows streamed from memory (generated values hold no tab, newline or backslash).
const GW_LOAD = "LOAD DATA LOCAL INFILE 'gw_cdr.tsv' INTO TABLE gw_cdr FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' (rec_key, callid, callref, created, answered, ended, duration_sec, duration_ms, end_reason, sip_code, accountcode, dst_user, destination)";
const AMI_LOAD = "LOAD DATA LOCAL INFILE 'gw_ami_cdr.tsv' INTO TABLE gw_ami_cdr FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' (box, uniqueid, sequence, accountcode, dst, start_time, answer_time, end_time, duration, billsec, disposition, userfield, sip_callid, received_at)";
const CC_LOAD = "LOAD DATA LOCAL INFILE 'cc_call.tsv' INTO TABLE cc_call FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' (sessionid, uniqueid, card_id, nasipaddress, starttime, stoptime, sessiontime, real_sessiontime, calledstation, sessionbill, src, dnid, terminatecauseid, a2b_custom1)";

function tsv(rows: unknown[][]): string {
  let s = '';
  for (const r of rows) s += r.map((v) => (v === null || v === undefined ? '\\N' : String(v))).join('\t') + '\n';
  return s;
}

export interface DayWriter {
  write(c: Chunk): Promise<void>;
  close(): Promise<void>;
}

/**
 * Writes chunks on three connections in parallel (one per table); cc_call TIMESTAMPs as UTC. 'load' streams
 * LOAD DATA LOCAL INFILE from memory (several times faster) and falls back to multi-row INSERTs when the server
 * refuses local infile.
 */
export async function openDayWriter(db: Db, method: 'load' | 'insert' = 'load'): Promise<DayWriter> {
  const conns = await Promise.all([db.getConnection(), db.getConnection(), db.getConnection()]);
  // Bulk load: UTC session (cc_call TIMESTAMPs), no per-row unique checks (the generator's keys are unique).
  for (const c of conns) await c.query("SET time_zone = '+00:00', unique_checks = 0");
  const [cg, ca, cc] = conns;
  let useLoad = method === 'load';
  const load = (conn: NonNullable<typeof cg>, sql: string, rows: unknown[][]): Promise<unknown> => {
    const text = Buffer.from(tsv(rows));
    return conn.query({ sql, infileStreamFactory: () => Readable.from([text]) });
  };
  const writeLoad = async (c: Chunk): Promise<void> => {
    await Promise.all([
      c.gw.length ? load(cg!, GW_LOAD, c.gw.map((r) => [r.recKey, r.callid, r.callref, r.created, r.answered, r.ended, r.dur, r.dur * 1000, r.reason, r.sip, r.accountcode, r.dst, r.destination])) : undefined,
      c.ami.length ? load(ca!, AMI_LOAD, c.ami.map((r) => [r.box, r.uniqueid, r.sequence, r.accountcode, r.dst, r.start, r.answer, r.end, r.duration, r.billsec, r.disposition, r.callid, r.callid, r.end])) : undefined,
      c.cc.length ? load(cc!, CC_LOAD, c.cc.map((r) => [`SIP/gw-${r.uniqueid}`, r.uniqueid, r.cardId, '', r.start, r.stop, r.sessiontime, r.sessiontime, r.called, r.bill, 'caller', r.called, r.tc, r.custom1])) : undefined,
    ]);
  };
  return {
    async write(c) {
      if (useLoad) {
        try {
          await writeLoad(c);
          return;
        } catch (e) {
          const code = (e as { code?: string }).code ?? '';
          if (!/LOAD_INFILE|NOT_ALLOWED/.test(code) || c.gw.length + c.ami.length + c.cc.length === 0) throw e;
          useLoad = false; // refused before any row was loaded: write this chunk with INSERTs instead
        }
      }
      const jobs: Promise<unknown>[] = [];
      if (c.gw.length) {
        const p: unknown[] = [];
        for (const r of c.gw) {
          p.push(r.recKey, r.callid, r.callref, r.created, r.answered, r.ended, r.dur, r.dur * 1000, r.reason, r.sip, r.accountcode, r.dst, r.destination);
        }
        jobs.push(cg!.query(GW_INS + values(c.gw.length, 13), p));
      }
      if (c.ami.length) {
        const p: unknown[] = [];
        for (const r of c.ami) p.push(r.box, r.uniqueid, r.sequence, r.accountcode, r.dst, r.start, r.answer, r.end, r.duration, r.billsec, r.disposition, r.callid, r.callid, r.end);
        jobs.push(ca!.query(AMI_INS + values(c.ami.length, 14), p));
      }
      if (c.cc.length) {
        const p: unknown[] = [];
        for (const r of c.cc) p.push(`SIP/gw-${r.uniqueid}`, r.uniqueid, r.cardId, '', r.start, r.stop, r.sessiontime, r.sessiontime, r.called, r.bill, 'caller', r.called, r.tc, r.custom1);
        jobs.push(cc!.query(CC_INS + values(c.cc.length, 14), p));
      }
      await Promise.all(jobs);
    },
    async close() {
      for (const c of conns) {
        await c.query('SET time_zone = DEFAULT, unique_checks = DEFAULT').catch(() => undefined);
        c.release();
      }
    },
  };
}

export async function writeSessions(db: Db, sessions: readonly SessionIns[]): Promise<void> {
  for (const s of sessions) await db.query(SESSION_INS, [s.box, s.instance, s.connectedAt, s.disconnectedAt, 'gen-day']);
}

/** Extra cards (ids from 1000) on the seed's tariff group 1. */
export async function insertCards(db: Db, n: number): Promise<GenCard[]> {
  const cards: GenCard[] = [];
  for (let i = 0; i < n; i++) {
    const id = 1000 + i;
    const username = `70${String(id).padStart(8, '0')}`;
    await db.query(INSERT_CARD, [id, username, username, `pw${id}`, 100, 1, 't', 1, 0, 0, `Gen${id}`, 'Bench']);
    cards.push({ id, username });
  }
  return cards;
}

/** Generates and writes a day; returns what reconciliation must find. */
export async function genDay(db: Db, o: Omit<GenOptions, 'cards'> & { cardCount?: number; method?: 'load' | 'insert'; onProgress?: (done: number) => void }): Promise<GenResult> {
  const cards = await insertCards(db, o.cardCount ?? 200);
  const writer = await openDayWriter(db, o.method);
  let done = 0;
  try {
    const res = await generateDay({ ...o, cards, chunk: o.chunk ?? 10_000 }, async (c) => {
      await writer.write(c);
      done += c.gw.length;
      o.onProgress?.(done);
    });
    await writeSessions(db, res.sessions);
    return res;
  } finally {
    await writer.close();
  }
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({ options: { db: { type: 'string' }, date: { type: 'string' }, tz: { type: 'string' }, calls: { type: 'string' }, seed: { type: 'string' } } });
  if (!v.db) throw new Error('--db mysql://user:pw@host:port/database is required (a database with the A2Billing fixture, seed and gateway tables)');
  const db = createDb({ url: v.db, poolSize: 4 });
  const t0 = Date.now();
  const res = await genDay(db, { day: v.date ?? '2026-11-21', tz: v.tz ?? 'UTC', calls: Number(v.calls ?? 1_000_000), seed: Number(v.seed ?? 42) });
  process.stdout.write(`${JSON.stringify({ seconds: (Date.now() - t0) / 1000, rows: res.rows, expected: res.expected })}\n`);
  await db.end();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => { process.stderr.write(`gen-day: ${(e as Error).message}\n`); process.exit(1); });
}
