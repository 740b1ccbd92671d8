// Identifiers the gateway generates. Branches and tags are unguessable (CSPRNG): a guessed branch lets an
// attacker CANCEL or answer someone else's call.
import { randomBytes } from 'node:crypto';
import { MAGIC_COOKIE } from './headers.js';

/** 'z9hG4bK' + 22 chars of base64url (128 random bits). */
export function newBranch(): string {
  return MAGIC_COOKIE + randomBytes(16).toString('base64url');
}

/** A From/To tag: 64 random bits as 16 hex digits. */
export function newTag(): string {
  return randomBytes(8).toString('hex');
}

/** A Call-ID: 128 random bits, optionally '@host'. */
export function newCallId(host?: string): string {
  const id = randomBytes(16).toString('base64url');
  return host ? `${id}@${host}` : id;
}
