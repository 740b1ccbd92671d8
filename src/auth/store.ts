// Database reads of the auth stage (SQL text in src/db/queries/auth.ts).
import type { Db } from '../db/pool.js';
import { AUTH_ADDRESS_ALL, AUTH_SUBSCRIBER_BY_USERNAME } from '../db/queries/auth.js';
import type { AddressRow } from './address.js';
import type { SubscriberRow } from './credentials.js';

/** Where the stage reads its data; the default reads the views through a pool. */
export interface AuthSources {
  addressRows(): Promise<AddressRow[]>;
  subscribers(username: string): Promise<SubscriberRow[]>;
}

export function dbSources(db: Db, timeoutMs: number): AuthSources {
  return {
    async addressRows() {
      // The whole table: generous timeout, it runs off the call path.
      const [rows] = await db.query({ sql: AUTH_ADDRESS_ALL, timeout: Math.max(timeoutMs, 30_000) });
      return rows as AddressRow[];
    },
    async subscribers(username: string) {
      const [rows] = await db.query({ sql: AUTH_SUBSCRIBER_BY_USERNAME, timeout: timeoutMs }, [username]);
      return rows as SubscriberRow[];
    },
  };
}
