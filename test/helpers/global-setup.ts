// Starts one private MariaDB for the whole run (or uses A2B_TEST_DB_URL), handed to tests via inject('dbRootUrl').
import type { TestProject } from 'vitest/node';
import { startPrivateMariaDb, type PrivateMariaDb } from '../../src/devdb/private-mariadb.js';

declare module 'vitest' {
  export interface ProvidedContext {
    dbRootUrl: string;
  }
}

let server: PrivateMariaDb | undefined;

export async function setup(project: TestProject): Promise<void> {
  const given = process.env.A2B_TEST_DB_URL;
  if (given) {
    project.provide('dbRootUrl', given);
    return;
  }
  server = await startPrivateMariaDb({ log: (m) => console.log(`[test-db] ${m}`) });
  project.provide('dbRootUrl', server.rootUrl);
}

export async function teardown(): Promise<void> {
  await server?.stop();
}
