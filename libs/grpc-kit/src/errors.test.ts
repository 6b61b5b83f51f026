import { status } from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { invalidArgument, RULE_TRAILER, toStatus, trailerValue } from './errors.js';

describe('toStatus', () => {
  it('keeps a rule that quotes non-ASCII input as an escaped trailer, not a crash', () => {
    const s = toStatus(invalidArgument('name', 'must be a-z, got "💥\u0000é"'));
    expect(s.code).toBe(status.INVALID_ARGUMENT);
    expect(s.metadata.get(RULE_TRAILER)[0]).toBe('must be a-z, got "\\u{1f4a5}\\u{0}\\u{e9}"');
    expect(trailerValue('x'.repeat(5_000)).length).toBeLessThan(1_100);
  });

  it('answers a database data exception (SQLSTATE class 22) with INVALID_ARGUMENT', () => {
    const err = Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), {
      code: '22021',
    });
    expect(toStatus(err).code).toBe(status.INVALID_ARGUMENT);
    const other = Object.assign(new Error('relation does not exist'), { code: '42P01' });
    expect(toStatus(other).code).toBe(status.INTERNAL);
  });
});
