import type { DispatcherRow } from '../../../src/dispatch/destination.js';
import { Dispatcher, type DispatchConfig } from '../../../src/dispatch/dispatcher.js';
import { configSchema } from '../../../src/config/schema.js';
import { silentLogger } from '../../../src/log.js';
import type { Metrics } from '../../../src/metrics.js';

export function dispatchConfig(over: Partial<DispatchConfig> = {}): DispatchConfig {
  return { ...configSchema.parse({}).dispatch, ...over };
}

export function row(id: number, over: Partial<DispatcherRow> = {}): DispatcherRow {
  return { id, setid: 1, destination: `sip:10.0.0.${id}:5060;transport=udp`, state: 0, weight: 1, priority: 0, attrs: '', description: `box ${id}`, ...over };
}

export function makeDispatcher(rows: DispatcherRow[], over: Partial<DispatchConfig> = {}, extra: { now?: () => number; metrics?: Metrics } = {}): Dispatcher {
  const d = new Dispatcher({ config: dispatchConfig(over), log: silentLogger(), ...extra });
  d.load(rows);
  return d;
}

export const call = (callId: string, fromUser = 'alice') => ({ callId, fromUser });

/** First target id for each of n synthetic Call-IDs. */
export function firstPicks(d: Dispatcher, n: number, setId = 1): Map<string, number> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const id = d.select(setId, call(`${i}-a84b4c76e66710@pc33.atlanta.example.com`))[0]!.id;
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}
