import { describe, expect, it } from 'vitest';
import { DAY_MS, referenceSales } from './reference-data.js';

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('reference sales', () => {
  it('is the same for the same seed, different for another, and the same cell in any slice', () => {
    const all = referenceSales({ seed: 3, days: 20 });
    expect(referenceSales({ seed: 3, days: 20 })).toEqual(all);
    expect(referenceSales({ seed: 4, days: 20 })).not.toEqual(all);
    const tail = referenceSales({ seed: 3, days: 5, firstDay: 15 });
    expect(tail).toEqual(all.slice(all.length - tail.length));
    expect(all).toHaveLength(20 * 6 * 8);
    expect(new Set(all.map((r) => r.event_id)).size).toBe(all.length);
  });

  it('has weekly seasonality, promotion lift, warehouse effects and non-negative whole units', () => {
    const rows = referenceSales({ seed: 1, days: 364 });
    expect(rows.every((r) => Number.isInteger(r.units) && r.units >= 0 && r.price > 0)).toBe(true);
    const byDow = Array.from({ length: 7 }, (_, dow) =>
      mean(rows.filter((r) => new Date(r.day).getUTCDay() === dow).map((r) => r.units)),
    );
    expect(Math.max(...byDow) / Math.min(...byDow)).toBeGreaterThan(1.3);
    const promo = mean(rows.filter((r) => r.promo).map((r) => r.units));
    const regular = mean(rows.filter((r) => !r.promo).map((r) => r.units));
    expect(promo / regular).toBeGreaterThan(1.4);
    const byWarehouse = ['W1', 'W2', 'W3', 'W4', 'W5', 'W6'].map((w) =>
      mean(rows.filter((r) => r.warehouse_id === w).map((r) => r.units)),
    );
    expect(new Set(byWarehouse.map((m) => Math.round(m))).size).toBe(6);
  });

  it('shifts only the named warehouse, only from the named day', () => {
    const options = { seed: 9, days: 60 };
    const shift = { warehouse: 'W4', fromDay: 30, demandFactor: 1.8, priceFactor: 0.8 };
    const plain = referenceSales(options);
    const shifted = referenceSales({ ...options, shift });
    const start = plain[0]?.day ?? 0;
    const ratio = (w: string, after: boolean) => {
      const pick = (rows: typeof plain) =>
        mean(
          rows
            .filter((r) => r.warehouse_id === w && (r.day - start) / DAY_MS >= 30 === after)
            .map((r) => r.units),
        );
      return pick(shifted) / pick(plain);
    };
    expect(ratio('W4', false)).toBe(1);
    expect(ratio('W4', true)).toBeGreaterThan(1.8);
    expect(ratio('W1', true)).toBe(1);
    const price = (rows: typeof plain) =>
      mean(rows.filter((r) => r.warehouse_id === 'W4' && r.day - start >= 30 * DAY_MS).map((r) => r.price));
    expect(price(shifted) / price(plain)).toBeCloseTo(0.8, 2);
  });
});
