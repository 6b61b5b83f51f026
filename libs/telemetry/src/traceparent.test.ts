import { context, ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { describe, expect, it } from 'vitest';
import { activeTraceparent, spanContextOf } from './traceparent.js';

describe('spanContextOf', () => {
  it('reads the span a W3C traceparent names, as a remote context to link to', () => {
    expect(spanContextOf('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01')).toEqual({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: 1,
      isRemote: true,
    });
    expect(spanContextOf('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00')?.traceFlags).toBe(0);
  });

  it('gives nothing for an empty, malformed or all-zero traceparent', () => {
    for (const value of [
      '',
      'garbage',
      '01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01',
      '00-00000000000000000000000000000000-b7ad6b7169203331-01',
      '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01',
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra',
    ])
      expect(spanContextOf(value)).toBeUndefined();
  });
});

describe('activeTraceparent', () => {
  it('writes the active span as W3C does, or empty outside one, and reads back', () => {
    new NodeTracerProvider().register();
    const caller = {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: TraceFlags.SAMPLED,
    };
    expect(activeTraceparent()).toBe('');
    const written = context.with(trace.setSpanContext(ROOT_CONTEXT, caller), activeTraceparent);
    expect(written).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(spanContextOf(written)).toEqual({ ...caller, isRemote: true });
  });
});
