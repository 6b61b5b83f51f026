/**
 * The reference workload: daily units sold per warehouse x SKU, the seed's story in data.
 * Demand has a SKU base level, a warehouse effect, a weekly and a yearly cycle, promotions,
 * a price effect and noise; a shift can change one warehouse's demand from a given day on.
 * Every value is a function of the options (a seeded generator), so the demo, the tests and
 * the benchmarks see the same numbers on every machine.
 */

import { seededRandom } from '@ballast/sampling';

export const DAY_MS = 86_400_000;

export interface DemandShift {
  /** The warehouse whose demand changes, e.g. "W4". */
  warehouse: string;
  /** The first day (0-based, counted from `start`) with the new behaviour. */
  fromDay: number;
  /** Demand multiplier from then on (1.8: 80% more units at the same price). */
  demandFactor: number;
  /** Price multiplier from then on (0.8: a 20% price cut, which also lifts demand). */
  priceFactor?: number;
}

export interface ReferenceOptions {
  seed?: number;
  warehouses?: number;
  skus?: number;
  /** Days generated, counted from `firstDay`. */
  days?: number;
  /** The first generated day (0-based; later batches of the same series start later). */
  firstDay?: number;
  /** Day 0 (UTC midnight), default 2024-01-01. */
  start?: number;
  /** Relative amplitude of the weekly cycle (default 0.25) and the yearly one (default 0.1). */
  weekly?: number;
  yearly?: number;
  /** Share of SKU-days on promotion (default 0.12) and their demand lift (default 1.6). */
  promoRate?: number;
  promoLift?: number;
  /** Demand change per 1% of price change (default -1.2: elastic demand). */
  priceElasticity?: number;
  /** Relative standard deviation of the noise (default 0.08). */
  noise?: number;
  shift?: DemandShift;
}

export interface SaleRecord {
  event_id: string;
  /** UTC midnight of the day, epoch milliseconds. */
  day: number;
  warehouse_id: string;
  sku: string;
  units: number;
  price: number;
  promo: boolean;
}

/** A standard normal draw (Box-Muller) from a uniform generator. */
function normal(next: () => number): number {
  const u = Math.max(next(), Number.EPSILON);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
}

export const warehouseName = (w: number) => `W${w + 1}`;
export const skuName = (s: number) => `S${String(s + 1).padStart(2, '0')}`;

/**
 * Sales rows in day, warehouse, SKU order. The random stream of a (warehouse, SKU, day) cell
 * depends only on the seed and the cell, so generating days 90-99 alone gives the same rows
 * as generating days 0-99 and keeping the last ten.
 */
export function referenceSales(options: ReferenceOptions = {}): SaleRecord[] {
  const {
    seed = 42,
    warehouses = 6,
    skus = 8,
    days = 90,
    firstDay = 0,
    start = Date.UTC(2024, 0, 1),
    weekly = 0.25,
    yearly = 0.1,
    promoRate = 0.12,
    promoLift = 1.6,
    priceElasticity = -1.2,
    noise = 0.08,
    shift,
  } = options;
  // Fixed per-series traits, drawn from a generator of their own.
  const traits = seededRandom(seed);
  const skuBase = Array.from({ length: skus }, () => 20 + Math.round(traits() * 60));
  const skuPrice = Array.from({ length: skus }, () => Math.round((3 + traits() * 12) * 100) / 100);
  const warehouseEffect = Array.from({ length: warehouses }, () => 0.6 + traits() * 0.9);

  const rows: SaleRecord[] = [];
  for (let d = firstDay; d < firstDay + days; d++) {
    const day = start + d * DAY_MS;
    const dow = new Date(day).getUTCDay();
    const weeklyFactor = 1 + weekly * Math.sin((2 * Math.PI * (dow - 1)) / 7);
    const yearlyFactor = 1 + yearly * Math.sin((2 * Math.PI * d) / 365);
    for (let w = 0; w < warehouses; w++) {
      const shifted = shift !== undefined && shift.warehouse === warehouseName(w) && d >= shift.fromDay;
      for (let s = 0; s < skus; s++) {
        const next = seededRandom(seed * 1_000_003 + ((d * 131 + w) * 1021 + s));
        const promo = next() < promoRate;
        const basePrice = skuPrice[s] ?? 5;
        const discount = promo ? 0.85 : 1 - 0.05 * next();
        const price =
          Math.round(basePrice * discount * (shifted ? (shift?.priceFactor ?? 1) : 1) * 100) / 100;
        const priceEffect = Math.max(0.1, 1 + priceElasticity * (price / basePrice - 1));
        const expected =
          (skuBase[s] ?? 20) *
          (warehouseEffect[w] ?? 1) *
          weeklyFactor *
          yearlyFactor *
          (promo ? promoLift : 1) *
          priceEffect *
          (shifted ? (shift?.demandFactor ?? 1) : 1);
        const units = Math.max(0, Math.round(expected * (1 + noise * normal(next))));
        rows.push({
          event_id: `${warehouseName(w)}-${skuName(s)}-${d}`,
          day,
          warehouse_id: warehouseName(w),
          sku: skuName(s),
          units,
          price,
          promo,
        });
      }
    }
  }
  return rows;
}
