// docker/: there is no Docker engine (nor compose plugin) here to validate with, so check what can be checked:
// the compose file parses, every file it mounts exists, and the gateway config it ships is valid.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config/load.js';

const DOCKER = join(import.meta.dirname, '..', '..', 'docker');

interface Service { image?: string; build?: { context: string; dockerfile: string }; volumes?: string[]; depends_on?: Record<string, unknown>; command?: string[] }

describe('docker/', () => {
  const compose = parse(readFileSync(join(DOCKER, 'compose.yaml'), 'utf8')) as { services: Record<string, Service>; volumes: Record<string, unknown> };

  it('compose has the database, provisioning, the gateway and Asterisk, started in order', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['asterisk', 'gateway', 'mariadb', 'provision']);
    expect(compose.services.gateway!.depends_on).toEqual({ provision: { condition: 'service_completed_successfully' } });
    expect(compose.services.provision!.command?.[0]).toBe('provision');
  });

  it('every bind mount and build file exists', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const v of svc.volumes ?? []) {
        const src = v.split(':')[0]!;
        if (!src.startsWith('.')) {
          expect(Object.keys(compose.volumes), `${name}: named volume ${src}`).toContain(src);
          continue;
        }
        expect(existsSync(resolve(DOCKER, src)), `${name}: ${src}`).toBe(true);
      }
      if (svc.build) expect(existsSync(resolve(DOCKER, svc.build.context, svc.build.dockerfile)), `${name}: Dockerfile`).toBe(true);
    }
  });

  it('the shipped gateway config is valid once the secrets come from the environment', () => {
    const cfg = loadConfig({ file: join(DOCKER, 'gateway.yaml'), env: { A2B_DB_URL: 'mysql://a2bgw:pw@mariadb:3306/a2billing', A2B_NONCE_SECRET: 'x'.repeat(32) } });
    expect(cfg.ami.boxes.map((b) => b.name)).toEqual(['asterisk1']);
  });

  it('the image runs as a non-root user and starts the gateway', () => {
    const df = readFileSync(join(DOCKER, 'Dockerfile'), 'utf8');
    expect(df.match(/^FROM /gm)).toHaveLength(2);
    expect(df).toMatch(/^USER node$/m);
    expect(df).toMatch(/^ENTRYPOINT \["node", "dist\/src\/cli\/main\.js"\]$/m);
  });
});
