export const SCHEMA_VERSION_TABLE = `CREATE TABLE IF NOT EXISTS gw_schema_version (
  version INT UNSIGNED NOT NULL PRIMARY KEY,
  name VARCHAR(128) NOT NULL,
  checksum CHAR(64) NOT NULL,
  applied_at DATETIME(3) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`;
export const SCHEMA_VERSION_EXISTS = `SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'gw_schema_version'`;
export const SCHEMA_VERSIONS = 'SELECT version, name, checksum FROM gw_schema_version ORDER BY version';
export const SCHEMA_VERSION_INSERT = 'INSERT INTO gw_schema_version (version, name, checksum, applied_at) VALUES (?, ?, ?, UTC_TIMESTAMP(3))';
/** Params: [list of table names]. Which of them exist in the current database. */
export const A2B_TABLES_PRESENT = 'SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?)';
export const USER_EXISTS = 'SELECT COUNT(*) AS n FROM mysql.user WHERE User = ? AND Host = ?';
