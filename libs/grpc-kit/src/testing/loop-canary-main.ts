// The canary process of loop-canary.ts: a 10 ms timer and nothing else.
const INTERVAL_MS = 10;
const late: number[] = [];
let last = performance.now();
const timer = setInterval(() => {
  const now = performance.now();
  late.push(Math.max(0, now - last - INTERVAL_MS));
  last = now;
}, INTERVAL_MS);
process.on('message', () => {
  clearInterval(timer);
  late.sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round((late[Math.min(late.length - 1, Math.floor(q * late.length))] ?? 0) * 10) / 10;
  process.send?.({ ticks: late.length, lateMaxMs: at(1), lateP99Ms: at(0.99) }, () => process.disconnect());
});
process.send?.('started');
