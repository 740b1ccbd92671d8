// A deliberately small SIP reader for the load generator: just the fields a UA needs, so the generator
// stays cheap and independent of the gateway's own parser (it must not share the code it measures).

const COMPACT: Record<string, string> = { i: 'call-id', f: 'from', t: 'to', v: 'via', m: 'contact', l: 'content-length', c: 'content-type' };

export interface Lite {
  request: boolean;
  method: string;
  status: number;
  /** lower-case name → values in order (one per header line). */
  headers: Map<string, string[]>;
  first: string;
}

export function readLite(buf: Buffer): Lite | undefined {
  const s = buf.toString('latin1');
  const end = s.indexOf('\r\n\r\n');
  const head = end < 0 ? s : s.slice(0, end);
  const lines = head.split('\r\n');
  const first = lines[0] ?? '';
  const headers = new Map<string, string[]>();
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i]!;
    const c = l.indexOf(':');
    if (c <= 0) continue;
    let name = l.slice(0, c).trim().toLowerCase();
    name = COMPACT[name] ?? name;
    const v = l.slice(c + 1).trim();
    const arr = headers.get(name);
    if (arr) arr.push(v); else headers.set(name, [v]);
  }
  if (first.startsWith('SIP/2.0 ')) return { request: false, method: '', status: Number(first.slice(8, 11)), headers, first };
  const sp = first.indexOf(' ');
  if (sp <= 0) return undefined;
  return { request: true, method: first.slice(0, sp), status: 0, headers, first };
}

export function h(m: Lite, name: string): string {
  return m.headers.get(name)?.[0] ?? '';
}

export function tagOf(v: string): string {
  const m = /;\s*tag=([^;>\s]+)/i.exec(v);
  return m ? m[1]! : '';
}

export function cseqOf(m: Lite): { seq: number; method: string } {
  const [n, meth] = h(m, 'cseq').split(/\s+/);
  return { seq: Number(n), method: meth ?? '' };
}

/** Record-Route values split into single entries, in header order. */
export function recordRoutes(m: Lite): string[] {
  const out: string[] = [];
  for (const v of m.headers.get('record-route') ?? []) for (const part of v.split(/,(?=\s*<)/)) out.push(part.trim());
  return out;
}

export function uriInside(nameAddr: string): string {
  const a = nameAddr.indexOf('<');
  const b = nameAddr.indexOf('>', a + 1);
  return a >= 0 && b > a ? nameAddr.slice(a + 1, b) : nameAddr.split(';')[0]!.trim();
}

export function hostPortOf(uri: string): { host: string; port: number; tcp: boolean } {
  const m = /^sips?:(?:[^@]*@)?(\[[^\]]+\]|[^:;>]+)(?::(\d+))?/i.exec(uri);
  const host = (m?.[1] ?? '127.0.0.1').replace(/^\[|\]$/g, '');
  return { host, port: m?.[2] ? Number(m[2]) : 5060, tcp: /;transport=tcp/i.test(uri) };
}
