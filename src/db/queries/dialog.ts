// gw_dialog: confirmed dialogs that must survive a restart (see src/dialog/). Written in batches by
// src/dialog/db-writer.ts; read once at start-up by Dialogs.restore().

/** Multi-row upsert of n dialogs; params per row: dlg_key, callid, state, accountcode, created, updated, expires, data. */
export function upsertDialogs(n: number): string {
  const row = '(?, ?, ?, ?, ?, ?, ?, ?)';
  return `INSERT INTO gw_dialog (dlg_key, callid, state, accountcode, created, updated, expires, data) VALUES ${Array(n).fill(row).join(', ')}
  ON DUPLICATE KEY UPDATE state = VALUES(state), accountcode = VALUES(accountcode), updated = VALUES(updated),
  expires = VALUES(expires), data = VALUES(data)`;
}

/** Params: [list of dlg_key] (mysql2 expands the array into IN (...)). */
export const DELETE_DIALOGS = 'DELETE FROM gw_dialog WHERE dlg_key IN (?)';

/** Params: [state]. Every instance's rows: the snapshot names its instance and Dialogs keeps only its own. */
export const SELECT_DIALOGS_BY_STATE = 'SELECT dlg_key, data FROM gw_dialog WHERE state = ?';
