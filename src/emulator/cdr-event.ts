// The Cdr event exactly as Asterisk 20's cdr_manager writes it (key order of the captures in
// shared/asterisk-ami/), with the [mappings] extras appended after UserField.

export interface EmuCdr {
  accountCode: string;
  source: string;
  destination: string;
  destinationContext: string;
  callerId: string;
  channel: string;
  destinationChannel: string;
  lastApplication: string;
  lastData: string;
  /** Local wall-clock times "YYYY-MM-DD HH:MM:SS" ('' when not answered). */
  startTime: string;
  answerTime: string;
  endTime: string;
  duration: number;
  billableSeconds: number;
  disposition: 'ANSWERED' | 'NO ANSWER' | 'BUSY' | 'FAILED' | 'CONGESTION';
  amaFlags: string;
  uniqueId: string;
  userField: string;
  /** [mappings] values by name, e.g. { LinkedID, Sequence, SIPCallID, TalkTime, DialStatus }. */
  extras: Record<string, string>;
}

/** The cdr_manager [mappings] of the lab that produced the captures. */
export const DEFAULT_MAPPINGS = ['LinkedID', 'Sequence', 'SIPCallID', 'TalkTime', 'DialStatus'] as const;

export function cdrEventFields(c: EmuCdr, mappings: readonly string[] = DEFAULT_MAPPINGS): Array<[string, string]> {
  const f: Array<[string, string]> = [
    ['Event', 'Cdr'],
    ['Privilege', 'cdr,all'],
    ['AccountCode', c.accountCode],
    ['Source', c.source],
    ['Destination', c.destination],
    ['DestinationContext', c.destinationContext],
    ['CallerID', c.callerId],
    ['Channel', c.channel],
    ['DestinationChannel', c.destinationChannel],
    ['LastApplication', c.lastApplication],
    ['LastData', c.lastData],
    ['StartTime', c.startTime],
    ['AnswerTime', c.answerTime],
    ['EndTime', c.endTime],
    ['Duration', String(c.duration)],
    ['BillableSeconds', String(c.billableSeconds)],
    ['Disposition', c.disposition],
    ['AMAFlags', c.amaFlags],
    ['UniqueID', c.uniqueId],
    ['UserField', c.userField],
  ];
  for (const m of mappings) f.push([m, c.extras[m] ?? '']);
  return f;
}

/** Wire bytes of one message: `Key: value` CRLF lines and an empty line (values are written as they are). */
export function wireMessage(fields: ReadonlyArray<readonly [string, string]>): string {
  let s = '';
  for (const [k, v] of fields) s += `${k}: ${v}\r\n`;
  return `${s}\r\n`;
}
