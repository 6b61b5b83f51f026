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
import { CommitOperations } from './commit-operations.js';
import { Datasets } from './datasets.js';
import { IngestStore } from './store.js';
import { startTestIngest, type TestIngest } from './test-support.js';
import { salesBatch, salesRows, salesSchema } from './testing/sales.js';
import { Versions } from './versions.js';

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

describe('commit traceparent', () => {
  let t: TestIngest;
  beforeAll(async () => {
    context.setGlobalContextManager(new LocalContextManager());
    t = await startTestIngest('pglite');
  });
  afterAll(async () => {
    await t?.close();
    context.disable();
  });

  it('is the active span as W3C writes it, or empty outside one', () => {
    expect(activeTraceparent()).toBe('');
    expect(inCall(activeTraceparent)).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  });

  it('is recorded with the version the call committed, and read back with it', async () => {
    await t.client.createDataset({ name: 'traced', schema: salesSchema() });
    await t.client.ingestBatch({ batch: salesBatch('traced', 'a', salesRows('w1', 0, 10)) });
    const store = new IngestStore(() => t.sql);
    const operations = new CommitOperations(new Versions(store, new Datasets(store), async () => {}));
    const commit = async (name: string) => operations.result(await operations.start(name));
    const { version } = await inCall(() => commit('traced'));
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    expect(version.commitTraceparent).toBe(traceparent);
    expect(
      (await t.client.getVersion({ dataset: 'traced', id: version.id })).version?.commitTraceparent,
    ).toBe(traceparent);
    // Committing again with nothing new returns the version as the first call recorded it.
    expect((await commit('traced')).version.commitTraceparent).toBe(traceparent);

    // An untraced commit records nothing.
    await t.client.ingestBatch({ batch: salesBatch('traced', 'a', salesRows('w1', 10, 10)) });
    const untraced = await commit('traced');
    expect(untraced).toMatchObject({ created: true, version: { number: 2n, commitTraceparent: '' } });
  });
});
