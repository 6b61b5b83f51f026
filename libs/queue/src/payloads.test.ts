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

  it('checks a training spec and names what breaks it', () => {
    const spec = { hiddenUnits: [16, 8], epochs: 20, batchSize: 64, learningRate: 0.01, seed: 7 };
    const job = parsePayload('training.run', { model: 'demand', reason: 'cli', spec, promote: true });
    expect(job).toEqual({ model: 'demand', reason: 'cli', spec, promote: true });
    expect(() =>
      parsePayload('training.run', {
        model: 'demand',
        reason: 'cli',
        spec: { ...spec, hiddenUnits: [0], dropout: 1.5 },
        eval: { holdoutFraction: 1 },
      }),
    ).toThrow(/spec\.hiddenUnits\.0: .*spec\.dropout: .*eval\.holdoutFraction: /);
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

  it('carries prediction records on monitor.predictions, dropping prototype keys inside them', () => {
    const record = {
      requestId: 'r1',
      time: 1,
      latencyUs: 250,
      inputs: { features: [1, 2] },
      outputs: { prediction: [3] },
      entityKeys: ['warehouse=7'],
      segments: { region: 'north' },
    };
    const job = parsePayload('monitor.predictions', {
      model: 'demand',
      version: '2',
      rows: 1,
      records: [record],
    });
    expect(job.records).toEqual([record]);
    expect(
      parsePayload('monitor.predictions', { model: 'demand', version: '2', rows: 0 }).records,
    ).toBeUndefined();
    const polluting = JSON.parse(
      '{"model":"m","version":"1","rows":1,"records":[{"requestId":"r","time":1,"latencyUs":1,"inputs":{"__proto__":[1]},"outputs":{}}]}',
    ) as unknown;
    const parsed = parsePayload('monitor.predictions', polluting);
    expect(Object.keys(parsed.records?.[0]?.inputs ?? { missing: 1 })).toEqual([]);
    expect(Object.getPrototypeOf(parsed.records?.[0]?.inputs)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("carries each row's event time when given, and reads records queued without it", () => {
    const record = {
      requestId: 'r1',
      time: 1_700_000_000_000,
      latencyUs: 250,
      inputs: { features: [1, 2] },
      outputs: { prediction: [3, 4] },
    };
    const withTimes = { ...record, rowTimes: [1_690_000_000_000, 1_690_000_060_000] };
    const job = (records: unknown[]) =>
      parsePayload('monitor.predictions', { model: 'demand', version: '2', rows: 2, records });
    expect(job([withTimes]).records).toEqual([withTimes]);
    // A job queued by an inference that predates rowTimes: its rows happened at `time`.
    expect(job([record]).records?.[0]?.rowTimes).toBeUndefined();
    expect(() => job([{ ...record, rowTimes: [1, '2'] }])).toThrow(/records\.0\.rowTimes\.1/);
    // JSON turns a non-finite time into null, which is no time at all.
    expect(() => job([{ ...record, rowTimes: [1, null] }])).toThrow(/rowTimes/);
  });

  it('carries NaN and infinite values through JSON (where they become null) and back as NaN', () => {
    const job = {
      model: 'demand',
      version: '2',
      rows: 3,
      records: [
        {
          requestId: 'r1',
          time: 1,
          latencyUs: 250,
          inputs: { price: [Number.NaN, 2, Number.POSITIVE_INFINITY] },
          outputs: { prediction: [Number.NaN, 1, 2] },
        },
      ],
    };
    // What the producer checks, then what the worker reads back from Redis.
    const sent = parsePayload('monitor.predictions', job);
    const received = parsePayload('monitor.predictions', JSON.parse(JSON.stringify(sent)));
    expect(received.records?.[0]?.inputs.price).toEqual([Number.NaN, 2, Number.NaN]);
    expect(received.records?.[0]?.outputs.prediction).toEqual([Number.NaN, 1, 2]);
    expect(() =>
      parsePayload('monitor.predictions', {
        ...job,
        records: [{ ...job.records[0], inputs: { price: ['2'] } }],
      }),
    ).toThrow(/inputs/);
  });
});
