// A small, pure A2Billing-style rating: longest dial prefix over the card's tariff group plans, then
// connectcharge + rateinitial per minute, with the first block (initblock) and later blocks (billingblock)
// rounded up. Enough to put a price on a call A2Billing did not bill; not a full A2Billing rating engine
// (no time-of-day periods, step charges or package offers).

export interface RateCard {
  plan: number;
  prefix: string;
  /** Price per minute. */
  rate: number;
  initblock: number;
  billingblock: number;
  connect: number;
}

/** Seconds charged for `sec` seconds of conversation. */
export function billableSeconds(sec: number, initblock: number, billingblock: number): number {
  if (!(sec > 0)) return 0;
  let s = Math.ceil(sec);
  if (initblock > 0 && s < initblock) return initblock;
  if (billingblock > 0 && s > initblock) {
    const over = (s - Math.max(0, initblock)) % billingblock;
    if (over > 0) s += billingblock - over;
  }
  return s;
}

export function round5(x: number): number {
  return Math.round(x * 100000) / 100000;
}

/** Price of an answered call of `sec` seconds; 0 when it was not answered. */
export function priceCall(sec: number, rc: RateCard): number {
  if (!(sec > 0)) return 0;
  return round5(rc.connect + (rc.rate * billableSeconds(sec, rc.initblock, rc.billingblock)) / 60);
}

export interface RateBook {
  /** The rate card for a number dialled by a card of tariff group `tariff`, longest prefix first. */
  find(tariff: number, number: string): RateCard | undefined;
  price(tariff: number, number: string, sec: number): number | undefined;
}

/** plansOfTariff: tariff group id → its tariff plan ids (cc_tariffgroup_plan), in preference order. */
export function buildRateBook(plansOfTariff: Map<number, number[]>, cards: Iterable<RateCard>): RateBook {
  const byPlan = new Map<number, Map<string, RateCard>>();
  let maxLen = 0;
  for (const rc of cards) {
    let m = byPlan.get(rc.plan);
    if (!m) byPlan.set(rc.plan, (m = new Map()));
    if (!m.has(rc.prefix)) m.set(rc.prefix, rc);
    if (rc.prefix !== 'defaultprefix') maxLen = Math.max(maxLen, rc.prefix.length);
  }
  const find = (tariff: number, number: string): RateCard | undefined => {
    const plans = plansOfTariff.get(tariff);
    if (!plans?.length) return undefined;
    const digits = number.startsWith('+') ? number.slice(1) : number;
    for (let len = Math.min(maxLen, digits.length); len > 0; len--) {
      const p = digits.slice(0, len);
      for (const plan of plans) {
        const rc = byPlan.get(plan)?.get(p);
        if (rc) return rc;
      }
    }
    for (const plan of plans) {
      const rc = byPlan.get(plan)?.get('defaultprefix');
      if (rc) return rc;
    }
    return undefined;
  };
  return {
    find,
    price(tariff, number, sec) {
      const rc = find(tariff, number);
      return rc ? priceCall(sec, rc) : undefined;
    },
  };
}
