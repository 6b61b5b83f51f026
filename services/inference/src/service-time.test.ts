import { describe, expect, it } from 'vitest';
import { ServiceTime } from './service-time.js';

describe('ServiceTime', () => {
  it('starts from the seed and replaces it with the first batch measured; one hop never stands alone', () => {
    const service = new ServiceTime(40);
    expect(service.batchMs).toBe(40);
    // The first batch waited out a slow first connection: 30 ms beyond its 1 ms execution.
    service.record(31, 1);
    expect(service.execMs).toBe(1);
    expect(service.hopMs).toBe(0);
    service.record(1.5, 1);
    service.record(1.5, 1);
    expect(service.hopMs).toBe(0.5);
    expect(service.batchMs).toBe(1.5);
  });

  it('keeps a stall of the event loop out of the estimate: the hop is a median, the execution the worker measured', () => {
    const service = new ServiceTime();
    for (let i = 0; i < 10; i++) service.record(1.25, 1);
    // The answer waited 300 ms in the event loop's queue behind a stall; the worker took 1 ms.
    service.record(301, 1);
    expect(service.execMs).toBe(1);
    expect(service.hopMs).toBe(0.25);
    expect(service.batchMs).toBe(1.25);
  });

  it('follows an event loop that is behind on most batches (real queueing is counted)', () => {
    const service = new ServiceTime();
    for (let i = 0; i < 10; i++) service.record(1.25, 1);
    for (let i = 0; i < 10; i++) service.record(21, 1);
    expect(service.hopMs).toBe(20);
  });

  it('follows a model whose executions got slower', () => {
    const service = new ServiceTime();
    service.record(1, 1);
    for (let i = 0; i < 30; i++) service.record(10, 10);
    expect(service.execMs).toBeGreaterThan(9.9);
    expect(service.hopMs).toBe(0);
  });
});
