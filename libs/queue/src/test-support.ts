import { randomUUID } from 'node:crypto';

/** A Redis key prefix of this test file's own, so runs never see each other's jobs. */
export function testPrefix(): string {
  return `t-queue-${randomUUID().slice(0, 8)}`;
}

/** Resolves with the arguments of the first `event` an emitter fires. */
export function once<A extends unknown[]>(
  emitter: { once(event: string, listener: (...args: A) => void): unknown },
  event: string,
): Promise<A> {
  return new Promise((resolve) => emitter.once(event, (...args: A) => resolve(args)));
}
