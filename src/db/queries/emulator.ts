// SQL of the Asterisk emulator's A2Billing side effect (what a2billing.php's AGI reads and writes).

export const SELECT_CARD_BY_ACCOUNTCODE = 'SELECT id, tariff, status FROM cc_card WHERE username = ? LIMIT 1';

/** The longest dial prefix of the card's tariff group matching the number (A2Billing: SUBSTRING compare). */
export const SELECT_RATE_FOR_NUMBER = `SELECT r.id, r.idtariffplan, r.dialprefix, r.rateinitial, r.initblock, r.billingblock,
    r.connectcharge, r.disconnectcharge, tp.idtariffgroup
  FROM cc_tariffgroup_plan tp JOIN cc_ratecard r ON r.idtariffplan = tp.idtariffplan
  WHERE tp.idtariffgroup = ? AND r.dialprefix <> '' AND SUBSTRING(?, 1, CHAR_LENGTH(r.dialprefix)) = r.dialprefix
  ORDER BY CHAR_LENGTH(r.dialprefix) DESC, r.id LIMIT 1`;

export const INSERT_CC_CALL = `INSERT INTO cc_call (sessionid, uniqueid, card_id, nasipaddress, starttime, stoptime, sessiontime,
    calledstation, sessionbill, id_tariffgroup, id_tariffplan, id_ratecard, id_trunk, sipiax, src, buycost,
    real_sessiontime, dnid, terminatecauseid, destination, a2b_custom1, a2b_custom2)
  VALUES (?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, 0, ?, ?, ?, 0, ?, NULL)`;
