// The counters the auth stage bumps: a slice of the shared Metrics (src/metrics.ts). Every one is
// optional so the stage and its tests work without a registry.
import type { Metrics } from '../metrics.js';

export type AuthMetrics = Partial<Pick<Metrics, 'authResults' | 'bans' | 'abuseDrops' | 'bannedSources'>>;
