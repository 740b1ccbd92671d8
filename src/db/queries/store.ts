// SQL of the batched record writer (src/store). Identifiers come from validated TableSpecs (code, not input);
// every value is a `?` placeholder.

/** Multi-row INSERT for `rowCount` rows. 'ignore' keeps the first write of a key; 'update' overwrites non-key columns. */
export function batchInsertSql(table: string, columns: readonly string[], keyColumns: readonly string[], rowCount: number, onDuplicate: 'ignore' | 'update'): string {
  const cols = columns.map((c) => `\`${c}\``).join(', ');
  const one = `(${columns.map(() => '?').join(', ')})`;
  const values = new Array<string>(rowCount).fill(one).join(', ');
  let sql = `INSERT IGNORE INTO \`${table}\` (${cols}) VALUES ${values}`;
  if (onDuplicate === 'update') {
    const keys = new Set(keyColumns);
    const upd = columns.filter((c) => !keys.has(c)).map((c) => `\`${c}\` = VALUES(\`${c}\`)`);
    if (upd.length > 0) sql += ` ON DUPLICATE KEY UPDATE ${upd.join(', ')}`;
  }
  return sql;
}
