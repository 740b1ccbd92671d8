// SQL of the auth stage. Read-only, over the views of sql/002_a2billing_views.sql.

/** Every row of the `address` view (IP authentication); the stage builds its match table from them. */
export const AUTH_ADDRESS_ALL =
  'SELECT id, grp, ip_addr, mask, port, proto, tag, accountcode, card_id, description FROM address';

/**
 * SIP accounts of one username (digest authentication). The view lists active cards only; the stage
 * also compares the username byte for byte, because the column collation may fold case or pad spaces.
 * LIMIT keeps a pathological table (many rows for one name) from costing more than a few rows.
 */
export const AUTH_SUBSCRIBER_BY_USERNAME =
  'SELECT username, domain, password, accountcode, card_id, card_status FROM subscriber WHERE username = ? AND card_status = 1 LIMIT 8';
