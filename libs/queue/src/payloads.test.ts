import { describe, expect, it } from 'vitest';
import { queueNames } from './names.js';
import { InvalidPayloadError, parsePayload, payloadSchemas } from './payloads.js';

describe('parsePayload', () => {
  it('has a schema for every queue', () => {
    expect(Object.keys(payloadSchemas).sort()).toEqual([...queueNames].sort());
  });

  it('returns the typed payload, keeping optional fields', () => {
    const job = parsePayload('training.run', { model: 'demand', reason: 'drift', requestedBy: 'monitor' });
    expect(job).toEqual({ model: 'demand', reason: 'drift', requestedBy: 'monitor' });
  });

  it('names every field that is wrong', () => {
    let error: unknown;
    try {
      parsePayload('monitor.predictions', { model: 'demand', rows: -1 });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidPayloadError);
    const message = (error as Error).message;
    expect(message).toMatch(/^invalid monitor\.predictions payload: /);
    expect(message).toContain('version:');
    expect(message).toContain('rows:');
    expect(message).not.toContain('model:');
  });

  it('refuses a payload that is not an object', () => {
    expect(() => parsePayload('features.materialize', 'v1')).toThrow(InvalidPayloadError);
    expect(() => parsePayload('features.materialize', null)).toThrow(/invalid features\.materialize payload/);
  });

  it('drops keys the queue does not declare, prototype keys included', () => {
    const untrusted = JSON.parse(
      '{"datasetName":"sales","datasetVersion":"v1","__proto__":{"polluted":true},"extra":1}',
    ) as unknown;
    const job = parsePayload('features.materialize', untrusted);
    expect(job).toEqual({ datasetName: 'sales', datasetVersion: 'v1' });
    expect(Object.keys(job)).toEqual(['datasetName', 'datasetVersion']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});
