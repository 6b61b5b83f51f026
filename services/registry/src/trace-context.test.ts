import { AsyncLocalStorage } from 'node:async_hooks';
import { activeTraceparent } from '@ballast/telemetry';
import {
  type Context,
  type ContextManager,
  context,
  ROOT_CONTEXT,
  type SpanContext,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promote } from './deployments.js';
import { addVersion, createModel } from './test-fixtures.js';
import { startTestRegistry, type TestRegistry } from './test-registry.js';

/** The context propagation a service gets from the OpenTelemetry SDK, and nothing else. */
class LocalContextManager implements ContextManager {
  readonly #storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.#storage.run(ctx, () => fn.apply(thisArg, args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#storage.disable();
    return this;
  }
}

const caller: SpanContext = {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  traceFlags: TraceFlags.SAMPLED,
};
const inCall = <T>(fn: () => T): T => context.with(trace.setSpanContext(ROOT_CONTEXT, caller), fn);
const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

describe('deployment traceparent', () => {
  let registry: TestRegistry;
  beforeAll(async () => {
    context.setGlobalContextManager(new LocalContextManager());
    registry = await startTestRegistry('pglite');
  });
  afterAll(async () => {
    await registry?.close();
    context.disable();
  });

  it('is the active span as W3C writes it, or empty outside one', () => {
    expect(activeTraceparent()).toBe('');
    expect(inCall(activeTraceparent)).toBe(TRACEPARENT);
  });

  it('records the call that moved an alias, in the history and in the watch snapshot', async () => {
    const { client, sql } = registry;
    await createModel(client, 'traced');
    const version = await addVersion(client, 'traced');
    const deployment = await inCall(() =>
      promote(
        sql,
        { model: 'traced', version, reason: 'test', force: false },
        { actor: 'test', team: undefined },
      ),
    );
    expect(deployment.traceparent).toBe(TRACEPARENT);
    const [listed] = (await client.listDeployments({ model: 'traced' })).deployments;
    expect(listed).toMatchObject({ sequence: deployment.sequence, traceparent: TRACEPARENT });

    const abort = new AbortController();
    const stream = client
      .watchDeployments({ model: 'traced' }, { signal: abort.signal })
      [Symbol.asyncIterator]();
    try {
      const first = (await stream.next()).value;
      if (first?.event.case !== 'snapshot') throw new Error('expected a snapshot first');
      expect(first.event.value.aliases).toEqual([
        expect.objectContaining({ alias: 'production', version, traceparent: TRACEPARENT }),
      ]);
    } finally {
      abort.abort();
      await stream.next().catch(() => undefined);
    }

    // A change made outside any span (no instrumentation in this process) records none.
    await client.setAlias({ model: 'traced', alias: 'candidate', version });
    const [latest] = (await client.listDeployments({ model: 'traced' })).deployments;
    expect(latest).toMatchObject({ alias: 'candidate', traceparent: '' });
  });
});
