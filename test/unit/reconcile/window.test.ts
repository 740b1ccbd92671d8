import { describe, expect, it } from 'vitest';
import { addDays, billingWindow, daysBetween, isValidDay, isValidTimeZone, previousDay } from '../../../src/reconcile/window.js';

describe('billing window', () => {
  it('is local midnight to local midnight, in UTC', () => {
    expect(billingWindow('2026-11-21', 'Europe/Berlin')).toMatchObject({ start: '2026-11-20 23:00:00', end: '2026-11-21 23:00:00', hours: 24 });
    expect(billingWindow('2026-11-21', 'UTC')).toMatchObject({ start: '2026-11-21 00:00:00', end: '2026-11-22 00:00:00', hours: 24 });
    expect(billingWindow('2026-07-04', 'America/New_York')).toMatchObject({ start: '2026-07-04 04:00:00', end: '2026-07-05 04:00:00' });
    expect(billingWindow('2026-01-01', 'Asia/Kolkata')).toMatchObject({ start: '2025-12-31 18:30:00', end: '2026-01-01 18:30:00' });
  });

  it('is 23 hours on the spring DST day and 25 on the autumn one', () => {
    expect(billingWindow('2026-03-29', 'Europe/Berlin')).toMatchObject({ start: '2026-03-28 23:00:00', end: '2026-03-29 22:00:00', hours: 23 });
    expect(billingWindow('2026-10-25', 'Europe/Berlin')).toMatchObject({ start: '2026-10-24 22:00:00', end: '2026-10-25 23:00:00', hours: 25 });
    expect(billingWindow('2026-03-08', 'America/New_York').hours).toBe(23);
    expect(billingWindow('2026-11-01', 'America/New_York').hours).toBe(25);
  });

  it('starts at the first local instant of the day where midnight does not exist (DST at midnight)', () => {
    // America/Santiago springs forward at 24:00 on the first Saturday of September: 2026-09-06 starts at 01:00 local.
    const w = billingWindow('2026-09-06', 'America/Santiago');
    expect(w.start).toBe('2026-09-06 04:00:00');
    expect(w.hours).toBe(23);
  });

  it('consecutive days tile time without gaps or overlaps', () => {
    for (const tz of ['Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe']) {
      for (const d of daysBetween('2026-03-25', '2026-04-08')) expect(billingWindow(d, tz).endMs).toBe(billingWindow(addDays(d, 1), tz).startMs);
    }
  });

  it('validates days and zones, finds yesterday', () => {
    expect(isValidDay('2026-02-29')).toBe(false);
    expect(isValidDay('2028-02-29')).toBe(true);
    expect(isValidDay('2026-1-01')).toBe(false);
    expect(isValidTimeZone('Europe/Paris')).toBe(true);
    expect(isValidTimeZone('Mars/Olympus')).toBe(false);
    expect(() => billingWindow('2026-11-31', 'UTC')).toThrow(/not a date/);
    // 01:30 UTC on the 22nd is 02:30 in Berlin: yesterday there is the 21st; in Los Angeles it is still the 21st.
    expect(previousDay(Date.parse('2026-11-22T01:30:00Z'), 'Europe/Berlin')).toBe('2026-11-21');
    expect(previousDay(Date.parse('2026-11-22T01:30:00Z'), 'America/Los_Angeles')).toBe('2026-11-20');
    expect(daysBetween('2026-12-30', '2027-01-02')).toEqual(['2026-12-30', '2026-12-31', '2027-01-01', '2027-01-02']);
  });
});
