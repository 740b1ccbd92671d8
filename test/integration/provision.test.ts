import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../src/db/pool.js';
import { SEED } from '../../src/devdb/seed.js';
import { createTestDb, type TestDb } from '../helpers/db.js';

describe('provisioned views over the A2Billing fixture', () => {
  let t: TestDb;
  let gw: Db;
  beforeAll(async () => {
    t = await createTestDb({ seed: true });
    gw = createDb({ url: t.gwUrl, poolSize: 2 });
  });
  afterAll(async () => {
    await gw?.end();
    await t?.drop();
  });

  it('subscriber exposes SIP accounts of active cards only', async () => {
    const [rows] = await gw.query('SELECT username, password, accountcode, card_id, card_status FROM subscriber ORDER BY username');
    const users = (rows as Array<{ username: string }>).map((r) => r.username);
    expect(users).toEqual([SEED.cards.alice.sip.name, SEED.cards.bob.sip.name, SEED.cards.dave.sip.name, SEED.cards.erin.sip.name].sort());
    const alice = (rows as Array<Record<string, unknown>>).find((r) => r.username === SEED.cards.alice.sip.name)!;
    expect(alice).toMatchObject({ password: SEED.cards.alice.sip.secret, accountcode: SEED.cards.alice.username, card_id: 1, card_status: 1 });
  });

  it('address has literal-IP peers of active cards plus trusted ranges, never dynamic or hand-made peers', async () => {
    const [rows] = await gw.query('SELECT ip_addr, mask, port, proto, accountcode, card_id FROM address ORDER BY ip_addr');
    expect(rows).toEqual([
      { ip_addr: '127.0.0.2', mask: 32, port: 0, proto: 'any', accountcode: SEED.cards.bob.username, card_id: 2 },
      { ip_addr: '127.0.10.0', mask: 24, port: 0, proto: 'any', accountcode: SEED.cards.bob.username, card_id: 2 },
    ]);
  });

  it("hands out the card's username as the account code, whatever spelling the peer or gw_trusted row uses", async () => {
    // cc_card's collation folds case and trailing spaces, so these rows join card bob; they must bill as 'bob' exactly.
    const bob = SEED.cards.bob.username;
    const shouted = `${bob.toUpperCase()} `;
    await t.db.query(`INSERT INTO cc_sip_buddies (id_cc_card, name, accountcode, secret, username, host, regexten, callerid, context, fromuser, fromdomain, insecure, mailbox, md5secret, deny, mask, allow, musiconhold, fullcontact, setvar)
      VALUES (2, 'bob-spelled', ?, 'pw-spelled', 'bob-spelled', '127.0.0.77', '', '', 'a2billing', '', '', '', '', '', '', '', '', '', '', '')`, [shouted]);
    await t.db.query("INSERT INTO gw_trusted (ip_addr, mask, accountcode, description) VALUES ('127.0.0.78', 32, ?, 'spelled')", [shouted]);
    try {
      const [sub] = await gw.query("SELECT accountcode FROM subscriber WHERE username = 'bob-spelled'");
      expect(sub).toEqual([{ accountcode: bob }]);
      const [addr] = await gw.query("SELECT ip_addr, accountcode FROM address WHERE ip_addr IN ('127.0.0.77', '127.0.0.78') ORDER BY ip_addr");
      expect(addr).toEqual([{ ip_addr: '127.0.0.77', accountcode: bob }, { ip_addr: '127.0.0.78', accountcode: bob }]);
    } finally {
      await t.db.query("DELETE FROM cc_sip_buddies WHERE name = 'bob-spelled'");
      await t.db.query("DELETE FROM gw_trusted WHERE description = 'spelled'");
    }
  });

  it('follows card status changes at once (views, not copies)', async () => {
    await t.db.query('UPDATE cc_card SET status = 6 WHERE id = 2');
    const [rows] = await gw.query('SELECT COUNT(*) AS n FROM address');
    expect(Number((rows as Array<{ n: number }>)[0]!.n)).toBe(0);
    await t.db.query('UPDATE cc_card SET status = 1 WHERE id = 2');
  });

  it('an injection string as username finds nothing', async () => {
    const [rows] = await gw.query('SELECT * FROM subscriber WHERE username = ?', ["' OR '1'='1"]);
    expect(rows).toEqual([]);
  });

  it('the gateway user cannot write to A2Billing tables but can write its own', async () => {
    await expect(gw.query("UPDATE cc_card SET credit = 1000 WHERE id = 1")).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    await expect(gw.query("INSERT INTO cc_call (sessionid, uniqueid, card_id, nasipaddress, calledstation, src, dnid) VALUES ('x','1',1,'','1','1','1')")).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    await expect(gw.query('SELECT * FROM cc_sip_buddies')).rejects.toMatchObject({ code: 'ER_TABLEACCESS_DENIED_ERROR' });
    await gw.query("INSERT INTO gw_dispatcher (setid, destination) VALUES (1, 'sip:127.0.0.1:5070')");
    const [rows] = await gw.query('SELECT COUNT(*) AS n FROM gw_dispatcher');
    expect(Number((rows as Array<{ n: number }>)[0]!.n)).toBe(1);
  });
});
