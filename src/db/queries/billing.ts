// Credit and rating reads over A2Billing's own tables (read-only; the gateway user has SELECT only).
// One round trip per call: the card and every rate card of its tariff group whose dialprefix is one of the
// dialled number's prefixes (or A2Billing's 'defaultprefix'). Validity (dates, week window) is decided in
// src/billing/rating.ts from epoch seconds, so the session time zone never matters.

/** Params: [prefix list (expanded by mysql2 into IN (...)), card username (= account code)]. */
export const SELECT_CARD_AND_RATES = `SELECT c.id AS card_id, c.status, c.credit, c.typepaid, c.creditlimit, c.tariff, c.simultaccess,
       r.id AS rate_id, r.idtariffplan AS plan_id, r.dialprefix, r.rateinitial, r.initblock, r.billingblock,
       r.connectcharge, r.disconnectcharge,
       UNIX_TIMESTAMP(r.startdate) AS start_ts, UNIX_TIMESTAMP(r.stopdate) AS stop_ts, r.starttime, r.endtime,
       UNIX_TIMESTAMP(p.startingdate) AS plan_start_ts, UNIX_TIMESTAMP(p.expirationdate) AS plan_stop_ts
  FROM cc_card c
  LEFT JOIN cc_tariffgroup_plan gp ON gp.idtariffgroup = c.tariff
  LEFT JOIN cc_tariffplan p ON p.id = gp.idtariffplan
  LEFT JOIN cc_ratecard r ON r.idtariffplan = p.id AND r.dialprefix IN (?)
 WHERE c.username = ?`;

