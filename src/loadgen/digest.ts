// Client side of HTTP digest (RFC 7616 / 2617) for the load generator's authenticated calls.
import { createHash, randomBytes } from 'node:crypto';

function hash(alg: string, s: string): string {
  return createHash(alg === 'SHA-256' ? 'sha256' : 'md5').update(s).digest('hex');
}

function param(ch: string, name: string): string | undefined {
  const m = new RegExp(`${name}\\s*=\\s*(?:"([^"]*)"|([^,\\s]+))`, 'i').exec(ch);
  return m ? (m[1] ?? m[2]) : undefined;
}

/** Picks the first challenge whose algorithm we support and answers it. */
export function answerChallenge(challenges: string[], method: string, uri: string, user: string, password: string): string | undefined {
  for (const ch of challenges) {
    const alg = (param(ch, 'algorithm') ?? 'MD5').toUpperCase();
    if (alg !== 'MD5' && alg !== 'SHA-256') continue;
    const realm = param(ch, 'realm') ?? '';
    const nonce = param(ch, 'nonce') ?? '';
    const opaque = param(ch, 'opaque');
    const qop = param(ch, 'qop');
    const ha1 = hash(alg, `${user}:${realm}:${password}`);
    const ha2 = hash(alg, `${method}:${uri}`);
    let header = `Digest username="${user}", realm="${realm}", nonce="${nonce}", uri="${uri}", algorithm=${alg}`;
    if (qop && /\bauth\b/.test(qop)) {
      const cnonce = randomBytes(8).toString('hex');
      const nc = '00000001';
      header += `, qop=auth, nc=${nc}, cnonce="${cnonce}", response="${hash(alg, `${ha1}:${nonce}:${nc}:${cnonce}:auth:${ha2}`)}"`;
    } else {
      header += `, response="${hash(alg, `${ha1}:${nonce}:${ha2}`)}"`;
    }
    if (opaque !== undefined) header += `, opaque="${opaque}"`;
    return header;
  }
  return undefined;
}
