// Sample data (devdb/seed.ts). Column lists name only what the fixture has, so they also work on the real schema.
export const INSERT_TARIFFGROUP = 'INSERT INTO cc_tariffgroup (id, tariffgroupname, idtariffplan) VALUES (?, ?, ?)';
export const INSERT_TARIFFPLAN = "INSERT INTO cc_tariffplan (id, tariffname, startingdate, expirationdate) VALUES (?, ?, '2000-01-01 00:00:00', '2037-12-31 00:00:00')";
export const INSERT_TARIFFGROUP_PLAN = 'INSERT INTO cc_tariffgroup_plan (idtariffgroup, idtariffplan) VALUES (?, ?)';
export const INSERT_RATECARD = `INSERT INTO cc_ratecard (idtariffplan, dialprefix, rateinitial, initblock, billingblock, connectcharge,
  startdate, stopdate, musiconhold, destination, buyrate) VALUES (?, ?, ?, ?, ?, ?, '2000-01-01 00:00:00', '2037-12-31 00:00:00', '', 0, 0) `;
export const INSERT_CARD = `INSERT INTO cc_card (id, username, useralias, uipass, credit, tariff, activated, status, typepaid, creditlimit,
  firstname, lastname, address, city, state, country, zipcode, phone, email, fax, redial, loginkey, tag, email_notification,
  company_name, company_website, traffic_target, expirationdate, firstusedate)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', '', '', '', '', '', '', '', '', '', '', '', '', '', '', '2037-12-31 00:00:00', '2020-01-01 00:00:00')`;
export const INSERT_SIP_BUDDY = `INSERT INTO cc_sip_buddies (id_cc_card, name, accountcode, secret, username, host, regexten, callerid,
  context, fromuser, fromdomain, insecure, mailbox, md5secret, deny, mask, allow, musiconhold, fullcontact, setvar, type)
  VALUES (?, ?, ?, ?, ?, ?, '', '', 'a2billing', '', '', '', '', '', '', '', 'ulaw,alaw', '', '', '', 'friend')`;
export const INSERT_TRUSTED = 'INSERT INTO gw_trusted (ip_addr, mask, port, proto, accountcode, description) VALUES (?, ?, ?, ?, ?, ?)';
