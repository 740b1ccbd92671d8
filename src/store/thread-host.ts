// The writer thread: runs the journaled batch writers (journal appends, fdatasync, multi-row INSERTs, replay)
// off the SIP thread. Rows arrive already mapped; every hand-off is acknowledged through `taken` so the main
// thread can hand the same rows to a writer of its own if this thread ever stops.
import { parentPort, workerData } from 'node:worker_threads';
import { createDb, type Db } from '../db/pool.js';
import { describeError, GwError } from '../errors.js';
import { createLogger } from '../log.js';
import { defineTable, type Row } from './spec.js';
import type { FromHost, HostedStats, ThreadData, ToHost } from './thread-protocol.js';
import { openLocalWriter, type LocalWriter } from './writer.js';

const port = parentPort!;
const data = workerData as ThreadData;
const send = (m: FromHost): void => port.postMessage(m);
const log = createLogger({ level: data.logLevel }, { write: (line: string) => send({ t: 'log', line }) });
const db: Db = createDb({ url: data.db.url, poolSize: data.db.poolSize ?? 4, connectTimeoutMs: data.db.connectTimeoutMs });
const writers = new Map<number, LocalWriter<Row>>();

function state(w: number): HostedStats | undefined {
  const wr = writers.get(w);
  return wr ? { w, stats: wr.stats(), taken: wr.taken } : undefined;
}

function reply(id: number, p: Promise<HostedStats | undefined>): void {
  p.then(
    (state) => send({ t: 'reply', id, ok: true, state }),
    (e: unknown) => send({ t: 'reply', id, ok: false, code: e instanceof GwError ? e.code : 'GW_ERR_JOURNAL', message: describeError(e) }),
  );
}

function writer(w: number): LocalWriter<Row> {
  const wr = writers.get(w);
  if (!wr) throw new GwError('GW_ERR_JOURNAL', `writer thread: no writer #${w}`);
  return wr;
}

const timer = setInterval(() => {
  const list: HostedStats[] = [];
  for (const w of writers.keys()) list.push(state(w)!);
  if (list.length) send({ t: 'stats', list });
}, data.statsMs);

port.on('message', (m: ToHost) => {
  switch (m.t) {
    case 'rows':
      for (const [w, rows] of m.batches) {
        const wr = writers.get(w);
        if (!wr) {
          log.error({ w, rows: rows.length }, 'writer thread: rows for a writer that is not open');
          continue;
        }
        for (const r of rows) wr.enqueue(r);
      }
      return;
    case 'refuse':
      writers.get(m.w)?.refuse(JSON.parse(m.json) as unknown, m.json, m.reason);
      return;
    case 'open':
      reply(m.id, (async () => {
        const h = m.spec.header;
        const spec = defineTable<Row>({ table: h.table, columns: h.columns, keyColumns: h.keyColumns, onDuplicate: h.onDuplicate, toRow: (r) => r });
        writers.set(m.w, await openLocalWriter<Row>({ ...m.spec, spec, db, log }));
        return state(m.w);
      })());
      return;
    case 'flush':
      reply(m.id, (async () => {
        await writer(m.w).flush();
        return state(m.w);
      })());
      return;
    case 'close':
      reply(m.id, (async () => {
        await writer(m.w).close({ timeoutMs: m.timeoutMs });
        const s = state(m.w);
        writers.delete(m.w);
        return s;
      })());
      return;
    case 'end':
      reply(m.id, (async () => {
        clearInterval(timer);
        await Promise.all([...writers.values()].map((wr) => wr.close({ timeoutMs: 1000 })));
        writers.clear();
        await db.end();
        return undefined; // the main thread terminates this thread when it has the reply
      })());
      return;
  }
});
