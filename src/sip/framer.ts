// Cuts a TCP byte stream into SIP messages (RFC 3261 §18.3): header block up to CRLFCRLF, then exactly
// Content-Length bytes. Chunk boundaries are arbitrary. Between messages, a CRLFCRLF is a keep-alive ping
// (RFC 5626 §4.4.1, answered with a CRLF pong by the caller) and a lone CRLF is a pong or padding, skipped.
// After an error the framer is dead: the caller closes the connection (the stream cannot be resynchronised).

export type FramerErrorKind = 'too-large' | 'missing-content-length' | 'bad-content-length' | 'bad-framing';

export interface FramerHandlers {
  /** One complete message (header block + body), ready for parseMessage(buf, { stream: true }). */
  onMessage(msg: Buffer): void;
  /** A CRLFCRLF keep-alive ping: write '\r\n' back. */
  onPing(): void;
  /** Fatal framing error; `head` is the complete header block when it was read (answer 513/400 from it). */
  onError(kind: FramerErrorKind, reason: string, head: Buffer | undefined): void;
}

const CR = 13;
const LF = 10;
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

export class StreamFramer {
  // Unconsumed bytes are store[start, end). When nothing is pending, store IS the incoming chunk (zero copy);
  // otherwise it is a buffer we own that grows by doubling, so a message trickling in one byte per segment costs
  // O(size), not O(size²). Bytes before `end` are never overwritten: delivered messages may still reference them.
  private store: Buffer | null = null;
  private owned = false;
  private start = 0;
  private end = 0;
  /** Total length of the message being read, once its header block is complete; -1 before. */
  private need = -1;
  /** Where to resume the CRLFCRLF search (avoids rescanning a growing header block). */
  private scanFrom = 0;
  private dead = false;

  constructor(private readonly maxMessageSize: number, private readonly h: FramerHandlers) {}

  /** Bytes buffered but not yet delivered. */
  get buffered(): number { return this.end - this.start; }

  get failed(): boolean { return this.dead; }

  push(chunk: Buffer): void {
    if (this.dead || chunk.length === 0) return;
    if (this.store === null || this.start === this.end) {
      this.store = chunk;
      this.owned = false;
      this.start = 0;
      this.end = chunk.length;
    } else {
      this.append(chunk);
    }
    for (;;) {
      if (this.store === null || this.start === this.end) { this.store = null; this.start = this.end = 0; return; }
      const buf = this.store.subarray(this.start, this.end);
      if (this.need < 0) {
        // keep-alives and stray line ends between messages
        const b0 = buf[0]!;
        if (b0 === CR || b0 === LF) {
          if (b0 === LF) { this.consume(1); continue; }
          if (buf.length < 2) return;
          if (buf[1] !== LF) return this.fail('bad-framing', 'Bare CR between messages', undefined);
          if (buf.length < 3) return;
          if (buf[2] !== CR) { this.consume(2); continue; }
          if (buf.length < 4) return;
          if (buf[3] !== LF) return this.fail('bad-framing', 'Bare CR between messages', undefined);
          this.consume(4);
          this.h.onPing();
          if (this.dead) return;
          continue;
        }
        const end = buf.indexOf(CRLFCRLF, Math.max(0, this.scanFrom - 3));
        if (end < 0) {
          this.scanFrom = buf.length;
          if (buf.length > this.maxMessageSize) return this.fail('too-large', 'Message Too Large', undefined);
          return;
        }
        const headLen = end + 4;
        const cl = contentLength(buf, headLen);
        if (cl === -1) return this.fail('missing-content-length', 'Missing Content-Length', buf.subarray(0, headLen));
        if (cl < 0) return this.fail('bad-content-length', 'Bad Content-Length', buf.subarray(0, headLen));
        if (headLen + cl > this.maxMessageSize) return this.fail('too-large', 'Message Too Large', buf.subarray(0, headLen));
        this.need = headLen + cl;
      }
      if (buf.length < this.need) return;
      const msg = buf.subarray(0, this.need);
      this.consume(this.need);
      this.need = -1;
      this.h.onMessage(msg);
      if (this.dead) return;
    }
  }

  /** Stops the framer (e.g. when the connection closes); further input is ignored. */
  close(): void {
    this.dead = true;
    this.store = null;
    this.start = this.end = 0;
  }

  private append(chunk: Buffer): void {
    const store = this.store!;
    const pending = this.end - this.start;
    if (this.owned && store.length - this.end >= chunk.length) {
      chunk.copy(store, this.end);
      this.end += chunk.length;
      return;
    }
    const cap = Math.max(4096, 2 * (pending + chunk.length));
    const next = Buffer.allocUnsafe(cap);
    store.copy(next, 0, this.start, this.end);
    chunk.copy(next, pending);
    this.store = next;
    this.owned = true;
    this.start = 0;
    this.end = pending + chunk.length;
  }

  private consume(n: number): void {
    this.start += n;
    this.scanFrom = 0;
    if (this.start >= this.end) { this.store = null; this.start = this.end = 0; }
  }

  private fail(kind: FramerErrorKind, reason: string, head: Buffer | undefined): void {
    this.dead = true;
    this.store = null;
    this.start = this.end = 0;
    this.h.onError(kind, reason, head);
  }
}

function lower(c: number): number { return c >= 65 && c <= 90 ? c + 32 : c; }

const CL_NAME = Buffer.from('content-length', 'latin1');

/**
 * Content-Length from a header block, scanning bytes: -1 when absent, -2 when malformed or conflicting.
 * Matches 'Content-Length' and the compact 'l', any case, with optional spaces before the colon.
 */
export function contentLength(buf: Buffer, headLen: number): number {
  let found = -1;
  let i = buf.indexOf(LF) + 1; // skip the start line
  while (i > 0 && i < headLen) {
    const c = lower(buf[i]!);
    let j = -1;
    if (c === 108 /* l */) {
      j = i + 1; // compact form 'l' (other names starting with 'l' fail the colon check below)
    } else if (c === 99 /* c */ && i + 14 <= headLen) {
      j = i;
      for (let k = 0; k < 14; k++) if (lower(buf[i + k]!) !== CL_NAME[k]) { j = -1; break; }
      if (j >= 0) j = i + 14;
    }
    if (j >= 0) {
      while (j < headLen && (buf[j] === 32 || buf[j] === 9)) j++;
      if (j < headLen && buf[j] === 58 /* : */) {
        j++;
        while (j < headLen && (buf[j] === 32 || buf[j] === 9)) j++;
        let n = 0;
        let digits = 0;
        while (j < headLen && buf[j]! >= 48 && buf[j]! <= 57) { n = n * 10 + buf[j]! - 48; j++; digits++; }
        while (j < headLen && (buf[j] === 32 || buf[j] === 9)) j++;
        if (digits === 0 || digits > 9 || (buf[j] !== CR && buf[j] !== LF)) return -2;
        if (found >= 0 && found !== n) return -2;
        found = n;
      }
    }
    const nl = buf.indexOf(LF, i);
    if (nl < 0 || nl >= headLen) break;
    i = nl + 1;
  }
  return found;
}
