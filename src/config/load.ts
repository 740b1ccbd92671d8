import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { GwError } from '../errors.js';
import { configSchema, type Config } from './schema.js';

/** Env variables with a short, documented name. Anything else: A2B_CFG__section__key=value. */
export const ENV_SHORTCUTS: Record<string, string[]> = {
  A2B_DB_URL: ['db', 'url'],
  A2B_LOG_LEVEL: ['log', 'level'],
  A2B_LOG_FORMAT: ['log', 'format'],
  A2B_NONCE_SECRET: ['auth', 'nonceSecret'],
  A2B_MGMT_TOKEN: ['mgmt', 'token'],
  A2B_MGMT_PORT: ['mgmt', 'port'],
};

export class ConfigError extends GwError {
  readonly problems: string[];
  constructor(problems: string[], source: string) {
    super('GW_ERR_CONFIG_INVALID', `${source}:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || '(top level)';
}

/** Every issue as "field: what is wrong", all at once. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((i) => {
    let msg = i.message;
    if (i.code === 'unrecognized_keys') return `${formatPath(i.path)}: unknown key(s) ${i.keys.map((k) => `"${k}"`).join(', ')}`;
    if (i.code === 'invalid_type' && /received undefined/.test(msg)) msg = 'is required';
    return `${formatPath(i.path)}: ${msg}`;
  });
}

/** Env values are strings: coerce numbers, booleans and JSON arrays/objects so the schema sees real types. */
function coerceEnv(v: string): unknown {
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  if (v === 'true' || v === 'false') return v === 'true';
  if (/^[[{]/.test(v)) {
    try { return JSON.parse(v); } catch { return v; }
  }
  return v;
}

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = obj;
  for (let i = 0; i < path.length - 1; i++) {
    const k = path[i]!;
    if (typeof cur[k] !== 'object' || cur[k] === null) cur[k] = {};
    cur = cur[k] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

// Keys whose schema type is a string keep the env value verbatim: an all-digit token or secret must not
// become a number (refused), nor "true" a boolean, nor a JSON-looking password an object.
function isStringKey(path: readonly string[]): boolean {
  let s: unknown = configSchema;
  for (const k of path) s = childShape(s, k);
  let cur = s as { def?: { type?: string; innerType?: unknown } } | undefined;
  for (let i = 0; i < 10 && cur?.def && cur.def.type !== 'string'; i++) cur = cur.def.innerType as typeof cur;
  return cur?.def?.type === 'string';
}

const envValue = (path: readonly string[], v: string): unknown => (isStringKey(path) ? v : coerceEnv(v));

export function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  for (const [name, path] of Object.entries(ENV_SHORTCUTS)) {
    const v = env[name];
    if (v !== undefined && v !== '') setPath(raw, path, envValue(path, v));
  }
  for (const [name, v] of Object.entries(env)) {
    if (!name.startsWith('A2B_CFG__') || v === undefined) continue;
    const path = name.slice('A2B_CFG__'.length).split('__').filter(Boolean);
    setPath(raw, path, envValue(path, v));
  }
  return raw;
}

/** Validates an already-built object (tests, the demo). Throws ConfigError listing every problem. */
export function validateConfig(raw: unknown, source = 'config'): Config {
  const problems = rejectUnknownKeys(raw);
  const res = configSchema.safeParse(raw ?? {});
  if (!res.success) problems.push(...formatIssues(res.error.issues));
  if (problems.length || !res.success) throw new ConfigError(problems, source);
  return res.data;
}

// Unknown keys are almost always typos of a real key: say so instead of silently ignoring them.
function rejectUnknownKeys(raw: unknown): string[] {
  const out: string[] = [];
  const walk = (value: unknown, shape: unknown, path: string): void => {
    if (!value || typeof value !== 'object' || Array.isArray(value)) return;
    const keys = objectKeys(shape);
    if (!keys) return;
    for (const k of Object.keys(value)) {
      if (!keys.has(k)) out.push(`${path ? path + '.' : ''}${k}: unknown key`);
      else walk((value as Record<string, unknown>)[k], childShape(shape, k), path ? `${path}.${k}` : k);
    }
  };
  walk(raw, configSchema, '');
  return out;
}

function unwrap(s: unknown): unknown {
  let cur = s as { def?: { type?: string; innerType?: unknown; schema?: unknown; in?: unknown } } | undefined;
  for (let i = 0; i < 10 && cur?.def; i++) {
    const d = cur.def;
    if (d.type === 'object' || d.type === 'record' || d.type === 'array') return cur;
    cur = (d.innerType ?? d.schema ?? d.in) as typeof cur;
  }
  return cur;
}
function objectKeys(s: unknown): Set<string> | undefined {
  const u = unwrap(s) as { def?: { type?: string; shape?: Record<string, unknown> } } | undefined;
  return u?.def?.type === 'object' && u.def.shape ? new Set(Object.keys(u.def.shape)) : undefined;
}
function childShape(s: unknown, k: string): unknown {
  const u = unwrap(s) as { def?: { shape?: Record<string, unknown> } } | undefined;
  return u?.def?.shape?.[k];
}

/** Reads the YAML file (when given), applies env overrides and validates. */
export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv } = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.A2B_CONFIG;
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new GwError('GW_ERR_CONFIG_FILE', `${file}: ${(e as Error).message}`, { cause: e });
    }
    try {
      const doc = parseYaml(text) as unknown;
      if (doc !== null && doc !== undefined && (typeof doc !== 'object' || Array.isArray(doc))) {
        throw new Error('the top level must be a mapping of sections (log, db, sip, ...)');
      }
      raw = (doc ?? {}) as Record<string, unknown>;
    } catch (e) {
      throw new ConfigError([`YAML: ${(e as Error).message.split('\n')[0]}`], file);
    }
  }
  return validateConfig(applyEnv(raw, env), file ?? 'config');
}
