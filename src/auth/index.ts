// Public surface of the auth stage.
export { createAuthStage, type AuthStage, type AuthStageOptions, type AuthStats, type ReloadResult } from './stage.js';
export { AddressTable, type AddressRow, type AddressEntry, type AddressMatch } from './address.js';
export { AbuseGuard, type AbuseConfig, type AbuseVerdict } from './abuse.js';
export { NonceService, NonceCounter, type NonceCheck } from './nonce.js';
export { parseCredentials, computeResponse, challengeValue, validateDigest, type DigestAlgorithm } from './digest.js';
export { parseIp, parseCidr, makePrefix, PrefixTable, type ParsedIp } from './ip.js';
export { CredentialCache, type Credential, type SubscriberRow } from './credentials.js';
export { dbSources, type AuthSources } from './store.js';
export type { AuthMetrics } from './metrics.js';
