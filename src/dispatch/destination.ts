// Dispatcher destinations: the gw_dispatcher row, its parsed next hop, and its runtime state.
import type { Proto, Target } from '../proxy/hooks.js';
import { fnv1a32 } from './hash.js';

/** States as stored in gw_dispatcher.state (Kamailio/OpenSIPS-like). */
export const STATE_CODES = { active: 0, inactive: 1, probing: 2, disabled: 3 } as const;
export type DestState = keyof typeof STATE_CODES;
export const STATES: readonly DestState[] = ['active', 'inactive', 'probing', 'disabled'];

export function stateFromCode(code: number): DestState | undefined {
  return STATES[code];
}

/** Accepts a state name ("disabled") or its numeric code (3 or "3"). */
export function parseState(v: unknown): DestState | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return stateFromCode(v);
  if (typeof v !== 'string') return undefined;
  const s = v.trim().toLowerCase();
  if (/^[0-3]$/.test(s)) return stateFromCode(Number(s));
  return (STATES as readonly string[]).includes(s) ? (s as DestState) : undefined;
}

/** One gw_dispatcher row as read from the database. */
export interface DispatcherRow {
  id: number;
  setid: number;
  destination: string;
  state: number;
  weight: number;
  priority: number;
  attrs: string;
  description: string;
}

export interface ParsedUri {
  host: string;
  port: number;
  proto: Proto;
}

const HOSTNAME = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\.?$/;
const IPV6 = /^[0-9A-Fa-f:.]{2,45}$/;

/**
 * Parses a destination URI: sip:[user@]host[:port][;transport=udp|tcp][;other params].
 * Returns a problem description instead of throwing, so one bad row does not stop a reload.
 */
export function parseDestinationUri(uri: string): ParsedUri | { problem: string } {
  const s = uri.trim();
  if (s.length === 0 || s.length > 192) return { problem: 'destination is empty or longer than 192 characters' };
  if (!/^sip:/i.test(s)) return { problem: `destination "${s}" must start with sip: (sips/TLS is not supported)` };
  let rest = s.slice(4);
  const semi = rest.indexOf(';');
  const params = semi >= 0 ? rest.slice(semi + 1) : '';
  rest = semi >= 0 ? rest.slice(0, semi) : rest;
  if (rest.includes('?')) return { problem: `destination "${s}" must not carry URI headers` };
  const at = rest.lastIndexOf('@');
  if (at >= 0) rest = rest.slice(at + 1);

  let host: string;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) return { problem: `destination "${s}" has an unterminated IPv6 reference` };
    host = rest.slice(1, close);
    if (!IPV6.test(host) || !host.includes(':')) return { problem: `destination "${s}" has an invalid IPv6 address` };
    const after = rest.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) return { problem: `destination "${s}" has junk after the host` };
    portText = after ? after.slice(1) : undefined;
  } else {
    const colon = rest.indexOf(':');
    host = colon >= 0 ? rest.slice(0, colon) : rest;
    portText = colon >= 0 ? rest.slice(colon + 1) : undefined;
    if (!HOSTNAME.test(host)) return { problem: `destination "${s}" has an invalid host "${host}"` };
  }
  let port = 5060;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      return { problem: `destination "${s}" has an invalid port "${portText}"` };
    }
    port = Number(portText);
  }
  let proto: Proto = 'udp';
  if (params) {
    for (const p of params.split(';')) {
      const eq = p.indexOf('=');
      const name = (eq >= 0 ? p.slice(0, eq) : p).trim().toLowerCase();
      if (name !== 'transport') continue;
      const value = (eq >= 0 ? p.slice(eq + 1) : '').trim().toLowerCase();
      if (value !== 'udp' && value !== 'tcp') return { problem: `destination "${s}" has unsupported transport "${value}" (udp or tcp)` };
      proto = value;
    }
  }
  return { host, port, proto };
}

/** A loaded destination: immutable facts from the row plus mutable runtime state. */
export interface Destination {
  readonly id: string;
  readonly setId: number;
  readonly uri: string;
  readonly weight: number;
  readonly priority: number;
  readonly attrs: string;
  readonly description: string;
  readonly target: Target;
  /** Seed for rendezvous hashing: depends on the URI only, so a re-added box keeps its share of keys. */
  readonly seed: number;
  /** The state column as last loaded; a reload only overrides runtime state when the column changed. */
  readonly dbState: DestState;
  state: DestState;
  /** Consecutive failed probes / answered probes in the current state. */
  fails: number;
  oks: number;
  activeCalls: number;
  /** Counters since load (kept across reloads). */
  selected: number;
  failures: number;
  probesOk: number;
  probesFailed: number;
  lastProbeAt: number | undefined;
  lastProbeStatus: number | undefined;
  lastFailure: string | undefined;
  stateChangedAt: number;
}

export function buildDestination(row: DispatcherRow, parsed: ParsedUri, now: number): Destination {
  const uri = row.destination.trim();
  const dbState = stateFromCode(row.state) ?? 'active';
  const id = String(row.id);
  return {
    id,
    setId: row.setid,
    uri,
    weight: row.weight,
    priority: row.priority,
    attrs: row.attrs,
    description: row.description,
    target: Object.freeze({ id, uri, host: parsed.host, port: parsed.port, proto: parsed.proto }),
    seed: fnv1a32(uri.toLowerCase()),
    dbState,
    state: dbState,
    fails: 0,
    oks: 0,
    activeCalls: 0,
    selected: 0,
    failures: 0,
    probesOk: 0,
    probesFailed: 0,
    lastProbeAt: undefined,
    lastProbeStatus: undefined,
    lastFailure: undefined,
    stateChangedAt: now,
  };
}

/** What the management interface and metrics show about a destination (JSON-serialisable). */
export interface DestinationView {
  id: string;
  setId: number;
  uri: string;
  state: DestState;
  weight: number;
  priority: number;
  attrs: string;
  description: string;
  activeCalls: number;
  selected: number;
  failures: number;
  probesOk: number;
  probesFailed: number;
  consecutiveProbeFailures: number;
  lastProbeAt: string | null;
  lastProbeStatus: number | null;
  lastFailure: string | null;
  stateChangedAt: string;
}

export function viewOf(d: Destination): DestinationView {
  return {
    id: d.id,
    setId: d.setId,
    uri: d.uri,
    state: d.state,
    weight: d.weight,
    priority: d.priority,
    attrs: d.attrs,
    description: d.description,
    activeCalls: d.activeCalls,
    selected: d.selected,
    failures: d.failures,
    probesOk: d.probesOk,
    probesFailed: d.probesFailed,
    consecutiveProbeFailures: d.fails,
    lastProbeAt: d.lastProbeAt === undefined ? null : new Date(d.lastProbeAt).toISOString(),
    lastProbeStatus: d.lastProbeStatus ?? null,
    lastFailure: d.lastFailure ?? null,
    stateChangedAt: new Date(d.stateChangedAt).toISOString(),
  };
}
