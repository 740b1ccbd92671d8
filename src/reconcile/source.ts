// Database side of the reconciliation reads: one connection per source, each streaming its rows in merge-key
// order with back-pressure (the server sorts once; the client never holds more than the stream's buffer).

import type { Readable } from 'node:stream';
import type { Connection as CallbackConnection } from 'mysql2';
import { GwError } from '../errors.js';
import type { Db, DbConn } from '../db/pool.js';
import * as Q from '../db/queries/reconcile.js';
import type { AmiSessionRow } from './gaps.js';
import type { Cursor } from './merge.js';
import type { RateCard } from './rating.js';
import type { AmiCdrRow, Card, CcCallRow, GwCdrRow } from './types.js';

export interface StreamCursor<T> extends Cursor<T> {
  /** Ends the read: releases the connection, or destroys it when the stream did not finish. */
  close(): Promise<void>;
}

/** Gives a connection back to the pool with the session settings reset (other modules share the pool). */
export async function releaseClean(conn: DbConn): Promise<void> {
  try {
    await conn.query(Q.RESET_SESSION);
    conn.release();
  } catch {
    conn.destroy();
  }
}

function cursorOver<T>(conn: DbConn, stream: Readable): StreamCursor<T> {
  let ended = false;
  let failure: Error | undefined;
  stream.on('end', () => { ended = true; });
  stream.on('error', (e: Error) => { failure = e; });
  const wait = (): Promise<void> => new Promise((resolve) => {
    const done = (): void => {
      stream.off('readable', done);
      stream.off('end', done);
      stream.off('error', done);
      resolve();
    };
    stream.on('readable', done);
    stream.on('end', done);
    stream.on('error', done);
  });
  let closed = false;
  return {
    nextSync() {
      if (failure) throw new GwError('GW_ERR_DB_QUERY', failure.message, { cause: failure });
      const row = stream.read() as T | null;
      if (row !== null) return row;
      return ended || stream.readableEnded ? undefined : null;
    },
    async next() {
      for (;;) {
        if (failure) throw new GwError('GW_ERR_DB_QUERY', failure.message, { cause: failure });
        const row = stream.read() as T | null;
        if (row !== null) return row;
        if (ended || stream.readableEnded) return undefined;
        await wait();
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      if (ended && !failure) await releaseClean(conn);
      else {
        // Unread rows are still on the wire: the connection cannot go back to the pool.
        stream.destroy();
        (conn.connection as unknown as CallbackConnection).destroy();
      }
    },
  };
}

export async function openStream<T>(db: Db, sql: string, params: unknown[], opts: { highWaterMark?: number; sortBufferBytes?: number } = {}): Promise<StreamCursor<T>> {
  const conn = await db.getConnection();
  try {
    await conn.query(Q.SET_UTC);
    if (opts.sortBufferBytes) await conn.query(Q.SET_SORT, [opts.sortBufferBytes]);
  } catch (e) {
    await releaseClean(conn);
    throw e;
  }
  const cb = conn.connection as unknown as CallbackConnection;
  const stream = cb.query(sql, params).stream({ highWaterMark: opts.highWaterMark ?? 2000 });
  return cursorOver<T>(conn, stream);
}

export interface Sources {
  gw: StreamCursor<GwCdrRow>;
  ami: StreamCursor<AmiCdrRow>;
  cc: StreamCursor<CcCallRow>;
  close(): Promise<void>;
}

/** Streams of the three sources over [from, to) UTC (the billing window plus its margins). */
export async function openSources(db: Db, from: string, to: string, sortBufferMb = 64): Promise<Sources> {
  const opened: StreamCursor<unknown>[] = [];
  const o = { sortBufferBytes: sortBufferMb * 1048576 };
  try {
    const gw = await openStream<GwCdrRow>(db, Q.GW_CDR_STREAM, [from, to], o);
    opened.push(gw);
    const ami = await openStream<AmiCdrRow>(db, Q.AMI_CDR_STREAM, [from, to], o);
    opened.push(ami);
    const cc = await openStream<CcCallRow>(db, Q.CC_CALL_STREAM, [from, to], o);
    opened.push(cc);
    return { gw, ami, cc, close: async () => { await Promise.all(opened.map((c) => c.close())); } };
  } catch (e) {
    await Promise.all(opened.map((c) => c.close()));
    throw e;
  }
}

async function withUtc<T>(db: Db, fn: (c: DbConn) => Promise<T>): Promise<T> {
  const conn = await db.getConnection();
  try {
    await conn.query(Q.SET_UTC);
    return await fn(conn);
  } finally {
    await releaseClean(conn);
  }
}

/** Uniqueid keys of the rows without a call reference, per source (see AMI_UID_ONLY_KEYS). */
export async function loadUidOnlyKeys(db: Db, from: string, to: string): Promise<{ ami: Set<string>; cc: Set<string> }> {
  return withUtc(db, async (c) => {
    const keys = async (sql: string): Promise<Set<string>> => {
      const [rows] = await c.query(sql, [from, to]);
      return new Set((rows as Array<{ uk: string }>).map((r) => r.uk));
    };
    return { ami: await keys(Q.AMI_UID_ONLY_KEYS), cc: await keys(Q.CC_UID_ONLY_KEYS) };
  });
}

export interface Reference {
  cards: Card[];
  plans: Map<number, number[]>;
  rates: RateCard[];
  sessions: AmiSessionRow[];
}

/** Cards, tariffs and AMI sessions: small tables, read whole. */
export async function loadReference(db: Db, from: string, to: string): Promise<Reference> {
  return withUtc(db, async (c) => {
    const [cardRows] = await c.query(Q.CARDS);
    const cards = (cardRows as Array<{ id: number; username: string; tariff: number | null }>).map((r) => ({ id: Number(r.id), username: r.username, tariff: Number(r.tariff ?? 0) }));
    const [planRows] = await c.query(Q.TARIFF_PLANS);
    const plans = new Map<number, number[]>();
    for (const r of planRows as Array<{ tariff: number; plan: number }>) {
      const l = plans.get(r.tariff) ?? [];
      l.push(Number(r.plan));
      plans.set(r.tariff, l);
    }
    const [rateRows] = await c.query(Q.RATE_CARDS);
    const rates = (rateRows as Array<Record<string, unknown>>).map((r) => ({
      plan: Number(r.plan), prefix: String(r.prefix).trim(), rate: Number(r.rate), initblock: Number(r.initblock),
      billingblock: Number(r.billingblock), connect: Number(r.connect),
    }));
    const [sessRows] = await c.query(Q.AMI_SESSIONS, [to, from]);
    return { cards, plans, rates, sessions: sessRows as AmiSessionRow[] };
  });
}
