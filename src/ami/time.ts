// Asterisk writes CDR times in the box's local time, whole seconds, no zone ("2026-11-22 04:07:23").
// A ZoneClock turns such a wall-clock time in a named IANA zone into a UTC instant, and back (for the emulator).
import { GwError } from '../errors.js';

const LOCAL_RE = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?$/;
const HALF_DAY_MS = 12 * 3600_000;

const pad = (n: number): string => (n < 10 ? `0${n}` : String(n));

function fmtUtc(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}

/** Throws GW_ERR_CONFIG_INVALID for a zone the runtime does not know, so a typo fails at start-up. */
export function assertTimeZone(tz: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    throw new GwError('GW_ERR_CONFIG_INVALID', `unknown time zone "${tz}"`);
  }
}

/**
 * Converts between a box's wall-clock CDR times and UTC. One per box (it holds the zone's formatter, which is
 * costly to build); the zone is validated at construction.
 */
export class ZoneClock {
  readonly tz: string;
  private readonly utc: boolean;
  private readonly fmt: Intl.DateTimeFormat | undefined;

  constructor(tz = 'UTC') {
    assertTimeZone(tz);
    this.tz = tz;
    this.utc = tz === 'UTC' || tz === 'Etc/UTC';
    this.fmt = this.utc ? undefined : new Intl.DateTimeFormat('en-US', {
      timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
  }

  /** The instant's wall-clock fields in this zone, read as if they were UTC (epoch ms, whole seconds). */
  private wallAsUtc(ms: number): number {
    if (!this.fmt) return Math.floor(ms / 1000) * 1000;
    const p: Record<string, number> = {};
    for (const part of this.fmt.formatToParts(new Date(ms))) {
      if (part.type !== 'literal') p[part.type] = Number(part.value);
    }
    return Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!);
  }

  private offsetAt(ms: number): number {
    return this.wallAsUtc(ms) - Math.floor(ms / 1000) * 1000;
  }

  /**
   * "YYYY-MM-DD HH:MM:SS" in this zone → epoch ms (UTC). Empty → null. In a DST overlap the earlier instant wins;
   * in a gap (a wall time that never existed) the offset from before the change is used.
   */
  toUtcMs(text: string): number | null {
    const s = text.trim();
    if (s === '') return null;
    const m = LOCAL_RE.exec(s);
    if (!m) throw new GwError('GW_ERR_AMI_PROTOCOL', `bad time "${s.slice(0, 40)}" (expected YYYY-MM-DD HH:MM:SS)`);
    const wall = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!);
    if (Number.isNaN(wall) || fmtUtc(wall) !== `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${m[6]}`) {
      throw new GwError('GW_ERR_AMI_PROTOCOL', `bad time "${s}"`);
    }
    if (this.utc) return wall;
    // Zones change offset at most once within a day: the offsets half a day either side are the candidates.
    const before = this.offsetAt(wall - HALF_DAY_MS);
    const after = this.offsetAt(wall + HALF_DAY_MS);
    const valid = [wall - before, wall - after].filter((t) => this.wallAsUtc(t) === wall);
    return valid.length > 0 ? Math.min(...valid) : wall - before;
  }

  /** Epoch ms → "YYYY-MM-DD HH:MM:SS" in this zone (how Asterisk prints CDR times). */
  toLocal(ms: number): string {
    return fmtUtc(this.wallAsUtc(ms));
  }
}

/** Epoch ms → "YYYY-MM-DD HH:MM:SS" in UTC (a DATETIME literal). */
export function sqlDateTimeSec(ms: number): string {
  return fmtUtc(ms);
}
