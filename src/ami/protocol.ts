// The AMI wire format (Asterisk 20): one banner line (`Asterisk Call Manager/9.0.0`, no blank line after it),
// then messages of `Key: value` lines ending with an empty line. Lines end with CRLF; a bare LF is tolerated.
// The framer is incremental and byte-boundary safe (a chunk may end anywhere, even inside a UTF-8 sequence or
// between CR and LF), and bounded (a peer that never sends the empty line cannot grow memory without limit).
import { StringDecoder } from 'node:string_decoder';
import { GwError } from '../errors.js';

/** Canonical spelling of keys Asterisk writes in more than one case (UniqueID / Uniqueid / uniqueid ...). */
const CANONICAL_KEYS: ReadonlyMap<string, string> = new Map(
  [
    'Action', 'ActionID', 'Response', 'Message', 'Event', 'Privilege', 'Events', 'EventMask', 'Username', 'Secret',
    'Ping', 'Timestamp', 'Output', 'Command', 'EventList', 'ListItems',
    'UniqueID', 'LinkedID', 'AccountCode', 'Source', 'Destination', 'DestinationContext', 'CallerID', 'Channel',
    'DestinationChannel', 'LastApplication', 'LastData', 'StartTime', 'AnswerTime', 'EndTime', 'Duration',
    'BillableSeconds', 'Disposition', 'AMAFlags', 'UserField', 'Sequence', 'SIPCallID',
    'CallerIDNum', 'CallerIDName', 'ConnectedLineNum', 'ConnectedLineName', 'ChannelState', 'ChannelStateDesc',
    'Context', 'Exten', 'Priority', 'Language', 'Cause', 'EventName', 'EventTime', 'Application', 'AppData',
    'Peer', 'PeerAccount', 'Extra', 'Uptime', 'LastReload', 'Status',
  ].map((k) => [k.toLowerCase(), k]),
);

/** Canonical names of the events the gateway cares about (Asterisk spells them consistently; clients may not). */
const CANONICAL_EVENTS: ReadonlyMap<string, string> = new Map(
  ['Cdr', 'FullyBooted', 'Shutdown', 'Reload', 'CEL', 'Newchannel', 'Hangup', 'Newstate', 'NewAccountCode',
    'SoftHangupRequest', 'HangupRequest', 'DialBegin', 'DialEnd', 'VarSet', 'Newexten', 'BridgeEnter', 'BridgeLeave',
    'BridgeCreate', 'BridgeDestroy', 'SuccessfulAuth', 'InvalidPassword', 'ChallengeSent']
    .map((k) => [k.toLowerCase(), k]),
);

/** A key's canonical spelling: the known form when there is one, else the key as written. */
export function canonicalKey(key: string): string {
  return CANONICAL_KEYS.get(key.toLowerCase()) ?? key;
}

export function canonicalEventName(name: string): string {
  return CANONICAL_EVENTS.get(name.toLowerCase()) ?? name;
}

/** One AMI message: its lines in wire order, with case-insensitive lookup. */
export class AmiMessage {
  /** Lines as received (key spelled as on the wire), in order. */
  readonly lines: ReadonlyArray<readonly [string, string]>;
  private readonly index = new Map<string, string[]>();

  constructor(lines: ReadonlyArray<readonly [string, string]>) {
    this.lines = lines;
    for (const [k, v] of lines) {
      const lk = k.toLowerCase();
      const list = this.index.get(lk);
      if (list) list.push(v);
      else this.index.set(lk, [v]);
    }
  }

  /** First value of a key, any case (`uniqueid`, `UniqueID` and `Uniqueid` are one key). */
  get(key: string): string | undefined {
    return this.index.get(key.toLowerCase())?.[0];
  }

  /** Every value of a key (e.g. the `Output` lines of a Command response). */
  getAll(key: string): string[] {
    return this.index.get(key.toLowerCase()) ?? [];
  }

  has(key: string): boolean {
    return this.index.has(key.toLowerCase());
  }

  /** The event name in canonical case, or undefined for a response. */
  get event(): string | undefined {
    const e = this.get('Event');
    return e === undefined ? undefined : canonicalEventName(e);
  }

  get response(): string | undefined {
    return this.get('Response');
  }

  get actionId(): string | undefined {
    return this.get('ActionID');
  }

  /** Canonical key → first value, for logs and tests. */
  toObject(): Record<string, string> {
    const o: Record<string, string> = {};
    for (const [k, v] of this.lines) {
      const ck = canonicalKey(k);
      if (!(ck in o)) o[ck] = v;
    }
    return o;
  }
}

export interface FramerHandlers {
  banner(line: string): void;
  message(msg: AmiMessage): void;
}

export interface FramerOptions {
  /** Largest message accepted, in characters (a Command output can be long; a Cdr event is < 2 KiB). */
  maxMessageChars?: number;
  /** Whether the first line is the banner (true for a client reading from Asterisk). */
  expectBanner?: boolean;
}

const BANNER_PREFIX = 'Asterisk Call Manager/';

/**
 * Incremental AMI framer. push() throws GW_ERR_AMI_PROTOCOL when a message exceeds the size limit or the banner
 * is not Asterisk's; the caller then drops the connection.
 */
export class AmiFramer {
  private readonly decoder = new StringDecoder('utf8');
  private partial = '';
  private lines: Array<readonly [string, string]> = [];
  private chars = 0;
  private bannerPending: boolean;
  private readonly max: number;

  constructor(private readonly handlers: FramerHandlers, opts: FramerOptions = {}) {
    this.bannerPending = opts.expectBanner ?? true;
    this.max = opts.maxMessageChars ?? 1024 * 1024;
  }

  push(chunk: Buffer | string): void {
    const text = typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    if (text.length === 0) return;
    let data = this.partial.length > 0 ? this.partial + text : text;
    let start = 0;
    for (;;) {
      const nl = data.indexOf('\n', start);
      if (nl < 0) break;
      const end = nl > start && data.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      this.line(data.slice(start, end));
      start = nl + 1;
    }
    this.partial = start === 0 ? data : data.slice(start);
    data = '';
    if (this.partial.length + this.chars > this.max) {
      throw new GwError('GW_ERR_AMI_PROTOCOL', `message longer than ${this.max} characters without an end`);
    }
  }

  private line(line: string): void {
    if (this.bannerPending) {
      this.bannerPending = false;
      if (!line.startsWith(BANNER_PREFIX)) {
        throw new GwError('GW_ERR_AMI_PROTOCOL', `unexpected banner "${line.slice(0, 60)}" (is this an Asterisk manager port?)`);
      }
      this.handlers.banner(line);
      return;
    }
    if (line.length === 0) {
      if (this.lines.length === 0) return; // stray empty line between messages
      const msg = new AmiMessage(this.lines);
      this.lines = [];
      this.chars = 0;
      this.handlers.message(msg);
      return;
    }
    this.chars += line.length + 2;
    if (this.chars > this.max) throw new GwError('GW_ERR_AMI_PROTOCOL', `message longer than ${this.max} characters`);
    const colon = line.indexOf(':');
    if (colon <= 0) {
      // Old-style "Response: Follows" command output: a bare line belongs to the output.
      this.lines.push(['Output', line]);
      return;
    }
    const key = line.slice(0, colon).trim();
    let vstart = colon + 1;
    if (line.charCodeAt(vstart) === 32) vstart++;
    this.lines.push([key, line.slice(vstart)]);
  }
}

/**
 * Serialises one message. Values must not contain CR or LF: a value from outside (a command, a secret) that did
 * would let its author inject a second action, so it is refused rather than escaped.
 */
export function serializeMessage(fields: ReadonlyArray<readonly [string, string]>): string {
  let out = '';
  for (const [k, v] of fields) {
    if (/[\r\n]/.test(k) || /[\r\n]/.test(v) || k.includes(':') || k.length === 0) {
      throw new GwError('GW_ERR_AMI_PROTOCOL', `field "${k.slice(0, 40)}" contains a line break or a colon`);
    }
    out += `${k}: ${v}\r\n`;
  }
  return `${out}\r\n`;
}
