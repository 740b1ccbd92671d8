// One table of error codes for the whole gateway. Expected outcomes (a 407, a busy box) are
// returned values; a GwError is a real fault or a refusal that carries its own SIP answer.

export interface ErrorSpec {
  readonly message: string;
  /** SIP status to answer with when the error ends a SIP request. */
  readonly sipStatus?: number;
}

export const ERRORS = {
  // configuration and start-up
  GW_ERR_CONFIG_INVALID: { message: 'configuration is invalid' },
  GW_ERR_CONFIG_FILE: { message: 'configuration file cannot be read' },
  GW_ERR_CLI_USAGE: { message: 'command line is invalid' },
  GW_ERR_NOT_IMPLEMENTED: { message: 'not implemented yet' },
  // database
  GW_ERR_DB_CONNECT: { message: 'cannot connect to the database' },
  GW_ERR_DB_QUERY: { message: 'database query failed' },
  GW_ERR_DB_URL: { message: 'database URL is invalid' },
  GW_ERR_SCHEMA_TOO_OLD: { message: 'database schema is older than this gateway; run `a2b-gateway provision`' },
  GW_ERR_SCHEMA_TOO_NEW: { message: 'database schema is newer than this gateway; upgrade the gateway' },
  GW_ERR_MIGRATION: { message: 'migration failed' },
  GW_ERR_A2B_SCHEMA: { message: 'the database does not look like an A2Billing database' },
  GW_ERR_LOCK_BUSY: { message: 'another instance holds the lock' },
  GW_ERR_PRIVATE_DB: { message: 'cannot start the private MariaDB' },
  // SIP
  GW_ERR_SIP_PARSE: { message: 'malformed SIP message', sipStatus: 400 },
  GW_ERR_SIP_TOO_LARGE: { message: 'SIP message too large', sipStatus: 513 },
  GW_ERR_SIP_TRANSPORT: { message: 'SIP transport error', sipStatus: 503 },
  GW_ERR_SIP_URI: { message: 'invalid SIP URI', sipStatus: 416 },
  // AMI
  GW_ERR_AMI_LOGIN: { message: 'AMI login failed' },
  GW_ERR_AMI_DISCONNECTED: { message: 'AMI connection is down' },
  GW_ERR_AMI_TIMEOUT: { message: 'AMI action timed out' },
  GW_ERR_AMI_PROTOCOL: { message: 'AMI protocol error' },
  GW_ERR_AMI_ACTION: { message: 'AMI action was refused' },
  GW_ERR_AMI_BACKFILL: { message: 'CDR backfill failed' },
  // accounting / reconciliation
  GW_ERR_JOURNAL: { message: 'accounting journal error' },
  GW_ERR_RECONCILE: { message: 'reconciliation failed' },
  GW_ERR_MGMT: { message: 'management request failed' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class GwError extends Error {
  readonly code: ErrorCode;
  readonly sipStatus: number | undefined;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, detail?: string, opts?: { cause?: unknown; details?: Record<string, unknown> }) {
    const spec: ErrorSpec = ERRORS[code];
    super(detail ? `${spec.message}: ${detail}` : spec.message, opts?.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'GwError';
    this.code = code;
    this.sipStatus = spec.sipStatus;
    this.details = opts?.details;
  }
}

export function isGwError(e: unknown, code?: ErrorCode): e is GwError {
  return e instanceof GwError && (code === undefined || e.code === code);
}

/** One line for a person: the message, and the cause's message when there is one. */
export function describeError(e: unknown): string {
  if (e instanceof GwError) return e.message; // its detail already says what the cause was
  if (e instanceof Error) {
    const cause = e.cause instanceof Error ? ` (${e.cause.message})` : '';
    return `${e.message}${cause}`;
  }
  return String(e);
}
