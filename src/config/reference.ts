// Walks the config schema to list every key with its type and default: README's configuration
// reference is generated from this (scripts/config-reference.ts) and a test keeps the two in step.
import { configSchema } from './schema.js';

export interface ConfigKey {
  path: string;
  type: string;
  default: string;
}

interface Def {
  type: string;
  innerType?: unknown;
  defaultValue?: unknown;
  shape?: Record<string, unknown>;
  element?: unknown;
  entries?: Record<string, string>;
  valueType?: unknown;
  in?: unknown;
  schema?: unknown;
}

function defOf(s: unknown): Def {
  return (s as { def: Def }).def;
}

function describeType(s: unknown): string {
  const d = defOf(s);
  switch (d.type) {
    case 'default': case 'prefault': case 'optional': case 'nullable': return describeType(d.innerType);
    case 'pipe': return describeType(d.in);
    case 'enum': return Object.values(d.entries ?? {}).map((v) => `\`${v}\``).join(' \\| ');
    case 'array': return `list of ${describeType(d.element)}`;
    case 'record': return `map of ${describeType(d.valueType)}`;
    case 'object': return 'object';
    default: return d.type;
  }
}

function defaultOf(s: unknown): unknown {
  let cur = s;
  for (let i = 0; i < 10; i++) {
    const d = defOf(cur);
    if (d.type === 'default') return typeof d.defaultValue === 'function' ? (d.defaultValue as () => unknown)() : d.defaultValue;
    if (d.type === 'optional' || d.type === 'nullable' || d.type === 'prefault') { cur = d.innerType; continue; }
    if (d.type === 'pipe') { cur = d.in; continue; }
    return undefined;
  }
  return undefined;
}

function objectShape(s: unknown): Record<string, unknown> | undefined {
  let cur = s;
  for (let i = 0; i < 10; i++) {
    const d = defOf(cur);
    if (d.type === 'object') return d.shape;
    if (d.innerType) { cur = d.innerType; continue; }
    if (d.in) { cur = d.in; continue; }
    return undefined;
  }
  return undefined;
}

export function configKeys(): ConfigKey[] {
  const out: ConfigKey[] = [];
  const walk = (shape: Record<string, unknown>, prefix: string): void => {
    for (const [k, s] of Object.entries(shape)) {
      const path = prefix ? `${prefix}.${k}` : k;
      const inner = objectShape(s);
      const d = defOf(s);
      if (inner && d.type !== 'array') { walk(inner, path); continue; }
      const def = defaultOf(s);
      out.push({ path, type: describeType(s), default: def === undefined ? '(none)' : `\`${JSON.stringify(def)}\`` });
    }
  };
  walk(objectShape(configSchema)!, '');
  return out;
}

export function configReferenceMarkdown(): string {
  const rows = configKeys().map((k) => `| \`${k.path}\` | ${k.type} | ${k.default.replace(/\|/g, '\\|')} |`);
  return ['| key | type | default |', '| --- | --- | --- |', ...rows].join('\n');
}
