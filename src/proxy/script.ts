// The routing policy, read top to bottom like an opensips.cfg `route {}` block. Every request that is not
// a retransmission, the ACK of one of our stateful non-2xx answers, or a CANCEL of a pending INVITE comes here.
// The core (core.ts) offers the primitives: reply, drop, relayInDialog, forward.
import { ACCOUNTCODE_HEADER, CALLREF_HEADER, callRef } from './callref.js';
import { ALLOW, type Authorization, type Inbound, type ProxyCore } from './core.js';
import type { Authenticated } from './hooks.js';
import { isOurs, looseRoute } from './route.js';

/** Headers that say which SIP extensions a request needs from us; we support none (RFC 3261 §16.3 step 4). */
const PROXY_REQUIRE = 'proxy-require';

export function createScript(core: ProxyCore): (inb: Inbound) => Promise<void> {
  const { hooks, identity, log } = core;

  return async function route(inb: Inbound): Promise<void> {
    const { req, facts } = inb;
    const reply = (status: number, reason?: string, headers?: ReadonlyArray<readonly [string, string]>): void =>
      core.reply(inb, status, reason, headers);

    // The ACK of one of our stateless refusals (407, 403, 503, ...): nothing to route, not a request to count.
    if (core.isStatelessAck(req)) return;

    // ---- sanity ---------------------------------------------------------------------------------
    // (malformed messages never get here: the transport answers 400 "<what was wrong>" or 513 itself)
    if (req.maxForwards === 0) return reply(483, 'Too Many Hops');
    const uri = req.tryUri();
    if (!uri) return reply(400, 'Bad Request-URI');
    if (uri.scheme !== 'sip' && uri.scheme !== 'sips') return reply(416, 'Unsupported URI Scheme');
    if (req.routes === null) return reply(400, 'Bad Route');
    if (req.hasHeader(PROXY_REQUIRE)) {
      return reply(420, 'Bad Extension', [['Unsupported', req.headerValues(PROXY_REQUIRE).join(', ')]]);
    }

    // ---- screening: banned sources, floods, scanners; before we say anything about ourselves -----
    if (hooks.screen) {
      const s = hooks.screen(facts);
      if (s.kind === 'drop') return core.drop(inb, s.reason, 'screen');
      if (s.kind === 'reject') return reply(s.status, s.reason, s.headers);
    }

    // ---- in-dialog requests: loose routing over our Record-Route -------------------------------
    if (req.tryTo()?.tag !== undefined) {
      const lr = looseRoute(req, identity, core.cfg.signer);
      if (lr.kind === 'routed') {
        // Account codes are only ever ours, in-dialog too (a re-INVITE must not smuggle one to Asterisk).
        req.removeHeader(ACCOUNTCODE_HEADER);
        // Phones (baresip) repeat our credentials on ACK/BYE/re-INVITE: they were for us, as on the INVITE.
        req.removeHeader('Proxy-Authorization');
        if (req.method === 'INVITE') reply(100, 'Trying'); // a re-INVITE may ring for a while too
        return core.relayInDialog(inb, lr.nextHopUri, lr.outProto, lr.ftag);
      }
      if (lr.kind === 'forged') log.warn({ callId: facts.callId, source: facts.source }, 'in-dialog request with a Route we did not issue');
      if (req.method === 'ACK') return core.drop(inb, 'ACK not routable', 'no-transaction');
      if (lr.kind === 'bad') return reply(400, lr.reason);
      return reply(404, 'Not here');
    }

    // ---- CANCEL and ACK that matched nothing -----------------------------------------------------
    if (req.method === 'CANCEL') return reply(481, 'Call/Transaction Does Not Exist');
    if (req.method === 'ACK') return core.drop(inb, 'ACK without matching transaction', 'no-transaction');

    // ---- initial requests ------------------------------------------------------------------------
    if (req.method !== 'INVITE') {
      // monitoring: OPTIONS to the gateway itself
      if (req.method === 'OPTIONS' && isOurs(uri, identity)) {
        return reply(200, 'OK', [['Allow', ALLOW], ['Accept', 'application/sdp']]);
      }
      return reply(405, 'Method Not Allowed', [['Allow', ALLOW]]);
    }

    // A Route naming us is the caller's outbound-proxy setting: consume it. Anything else is a preloaded
    // route through us to somewhere else: refused.
    while ((req.routes?.length ?? 0) > 0 && isOurs(req.routes![0]!.uri, identity)) req.removeFirstRoute();
    if ((req.routes?.length ?? 0) > 0) return reply(403, 'Preload Route denied');

    if (!facts.ruriUser) return reply(484, 'Address Incomplete');

    // ---- overload: past capacity, new calls are refused at once so calls already up keep flowing (overload.ts)
    if (core.admission !== undefined && !core.admission.admit()) return core.shed(inb);

    // From here on the answer may take a while (database, credit): a 100 stops the caller's retransmissions if
    // nothing else (407, 180 relayed) is sent first. Most calls never need it: one datagram less per call.
    core.tryingSoon(inb);

    // ---- who pays -------------------------------------------------------------------------------
    const a = await hooks.authenticate(facts);
    if (a.kind === 'challenge') return reply(a.status, undefined, a.headers);
    if (a.kind === 'reject') return reply(a.status, a.reason, a.headers);
    if (a.kind === 'drop') return core.drop(inb, a.reason, 'auth');
    const auth: Authenticated = { method: a.method, accountcode: a.accountcode, cardId: a.cardId, username: a.username };

    // Every P-Accountcode the caller sent goes (any case, compact, repeated, comma-joined); ours is the only one.
    req.removeHeader(ACCOUNTCODE_HEADER);
    req.addHeader(ACCOUNTCODE_HEADER, auth.accountcode);
    // The credentials were for us.
    req.removeHeader('Proxy-Authorization');
    // The billing join key (the dialplan stores it in cc_call.a2b_custom1); a caller's own copy is replaced.
    req.setHeader(CALLREF_HEADER, callRef(facts.callId));

    // ---- credit -----------------------------------------------------------------------------------
    let authz: Authorization | undefined;
    if (hooks.authorize) {
      const z = await hooks.authorize(facts, auth);
      if (z.kind === 'reject') return reply(z.status, z.reason, z.headers);
      authz = { release: z.release, maxDurationSec: z.maxDurationSec };
    }
    const release = (): void => authz?.release?.();

    // ---- where to ---------------------------------------------------------------------------------
    let r;
    try {
      r = await hooks.route(facts, auth);
    } catch (e) {
      release();
      throw e;
    }
    if (r.kind === 'reject') {
      release();
      return reply(r.status, r.reason, r.headers);
    }
    if (r.targets.length === 0) {
      release();
      return reply(503, 'Service Unavailable', [['Retry-After', String(core.cfg.retryAfterSec)]]);
    }

    // ---- Record-Route, call events, serial forwarding (core) ----------------------------------------
    log.info({ callId: facts.callId, accountcode: auth.accountcode, method: auth.method, ruriUser: facts.ruriUser, targets: r.targets.map((t) => t.id) }, 'routing call');
    core.forward(inb, r.targets, auth, authz);
  };
}
