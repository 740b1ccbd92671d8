// The contract between the SIP proxy core and the stages that decide policy (auth, billing, dispatch,
// dialog, acc). The proxy calls these hooks; stages implement them without importing the SIP stack.
// Everything here is plain data so stages can be unit-tested without sockets.

export type Proto = 'udp' | 'tcp';

export interface Source {
  ip: string;
  port: number;
  proto: Proto;
}

/** What a stage may read about a request. Header values are raw and attacker-controlled. */
export interface RequestFacts {
  method: string;
  /** Request-URI as received. */
  ruri: string;
  ruriUser: string;
  ruriHost: string;
  callId: string;
  fromUser: string;
  fromDomain: string;
  fromTag: string;
  toUser: string;
  toDomain: string;
  cseq: number;
  userAgent: string | undefined;
  source: Source;
  /** All values of a header (case-insensitive, compact forms understood, comma lists split). */
  header(name: string): string[];
}

export type AuthMethod = 'ip' | 'digest';

/** Extra headers to put on a locally generated response: [name, value]. */
export type HeaderList = ReadonlyArray<readonly [string, string]>;

export type ScreenDecision =
  | { kind: 'pass' }
  /** Say nothing (banned source, scanner). */
  | { kind: 'drop'; reason: string }
  | { kind: 'reject'; status: number; reason: string; headers?: HeaderList };

export type AuthDecision =
  | { kind: 'ok'; method: AuthMethod; accountcode: string; cardId?: number; username?: string }
  /** 407 with Proxy-Authenticate (or 401/WWW-Authenticate). */
  | { kind: 'challenge'; status: 401 | 407; headers: HeaderList }
  | { kind: 'reject'; status: number; reason: string; headers?: HeaderList }
  | { kind: 'drop'; reason: string };

export interface Authenticated {
  method: AuthMethod;
  accountcode: string;
  cardId?: number;
  username?: string;
}

export type AuthorizeDecision =
  /** maxDurationSec undefined: no limit beyond the dialog default. */
  | { kind: 'ok'; maxDurationSec?: number; release?: () => void }
  | { kind: 'reject'; status: number; reason: string; headers?: HeaderList };

export interface Target {
  /** Stable id of the destination (dispatcher row id or URI), used in accounting and failover marking. */
  id: string;
  /** SIP URI of the box, e.g. sip:10.0.0.5:5060;transport=tcp */
  uri: string;
  host: string;
  port: number;
  proto: Proto;
}

export type RouteDecision =
  | { kind: 'targets'; targets: Target[] }
  | { kind: 'reject'; status: number; reason: string; headers?: HeaderList };

export type TargetFailure = { kind: 'timeout' } | { kind: 'transport'; message: string } | { kind: 'status'; status: number };

/** A snapshot of a confirmed dialog, enough to end it with BYE to both sides after a restart. JSON-serialisable. */
export interface DialogInfo {
  callId: string;
  /** Caller side (UAC of the INVITE). */
  callerTag: string;
  calleeTag: string;
  /** From and To header values of the original INVITE (with tags as they stand in the dialog). */
  fromHeader: string;
  toHeader: string;
  callerContact: string;
  calleeContact: string;
  /** Route sets as each side would use them (lists of Route header values, in order). */
  callerRouteSet: string[];
  calleeRouteSet: string[];
  /** Where the caller's and callee's requests physically go (resolved next hop). */
  callerHop: Source;
  calleeHop: Source;
  /** Highest CSeq seen in each direction; the proxy uses +1 when it generates a BYE. */
  callerCseq: number;
  calleeCseq: number;
  /** Our own Record-Route value(s) towards each side. */
  recordRoute: string[];
  accountcode: string;
  targetId: string;
  createdAt: number;
  answeredAt: number;
}

export type EndReason = 'bye-caller' | 'bye-callee' | 'max-duration' | 'timeout' | 'error' | 'admin';

/** Call events for accounting and dialog tracking; emitted in this order for one call. */
export type CallEvent =
  /** The initial INVITE was accepted by the routing script and is about to be forwarded. */
  | { type: 'start'; facts: RequestFacts; auth: Authenticated | undefined; at: number;
      /** The limit authorize() returned, if any (accounting writes it into the CDR). */
      maxDurationSec?: number }
  /** One forwarding attempt ended without success (failover may follow). */
  | { type: 'attempt-failed'; facts: RequestFacts; auth: Authenticated | undefined; target: Target; status: number; reason: string; at: number; attempt: number }
  /** The call failed for good: final non-2xx relayed upstream (or generated: 408, 503, 487...). */
  | { type: 'failed'; facts: RequestFacts; auth: Authenticated | undefined; target: Target | undefined; status: number; reason: string; at: number; cancelled: boolean;
      /** Number of the attempt that produced this final answer (1-based), when a target was tried. */
      attempt?: number }
  /** 2xx relayed: the dialog is confirmed. */
  | { type: 'answered'; facts: RequestFacts; auth: Authenticated | undefined; target: Target; status: number; reason: string; at: number; dialog: DialogInfo;
      /** The limit authorize() returned, if any (the dialog's max-duration timer). */
      maxDurationSec?: number;
      /** Number of the attempt that was answered (1-based). */
      attempt?: number }
  /** An in-dialog request passed through (CSeq bookkeeping for the dialog snapshot). */
  | { type: 'in-dialog'; callId: string; fromTag: string; toTag: string; method: string; cseq: number; fromCaller: boolean; at: number }
  /** BYE seen (from either side) or the proxy ended the dialog itself. */
  | { type: 'ended'; callId: string; fromTag: string; toTag: string; reason: EndReason; at: number;
      /** Final status of the BYE (200 when absent) and its reason phrase. */
      status?: number; statusReason?: string;
      /** The dialog snapshot, so a CDR can still be written for a dialog restored after a restart. */
      dialog?: DialogInfo }
  /** A non-INVITE transaction that should be accounted (e.g. CANCEL when reportCancels). */
  | { type: 'transaction'; facts: RequestFacts; status: number; reason: string; at: number };

export interface ProxyHooks {
  /** Cheap per-request checks before any parsing beyond the basics: bans, floods, scanners. Sync by design. */
  screen?(facts: RequestFacts): ScreenDecision;
  /** Who pays for this INVITE. */
  authenticate(facts: RequestFacts): AuthDecision | Promise<AuthDecision>;
  /** Credit check and maximum duration for an authenticated caller. */
  authorize?(facts: RequestFacts, auth: Authenticated): AuthorizeDecision | Promise<AuthorizeDecision>;
  /** Ordered targets for serial forking (the first is tried first). */
  route(facts: RequestFacts, auth: Authenticated | undefined): RouteDecision | Promise<RouteDecision>;
  /** A target failed (timeout, transport, or a status in the failover list). */
  targetFailed?(target: Target, failure: TargetFailure): void;
  /** Accounting and dialog tracking. Must not throw and must not block. */
  onCallEvent?(event: CallEvent): void;
}

/** What the proxy offers to stages that must send SIP (handed to them as functions at construction). */
export interface ProxyActions {
  /** Ends a confirmed dialog with BYE to both sides. Resolves when both BYEs got a final answer or timed out. */
  endDialog(dialog: DialogInfo, reason: EndReason): Promise<void>;
  /** Sends OPTIONS to a target; resolves with the status, or 0 on timeout/transport error. */
  probe(target: Target, timeoutMs: number): Promise<number>;
}
