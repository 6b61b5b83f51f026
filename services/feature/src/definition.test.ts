import {
  Aggregation,
  FeatureSchema,
  FeatureViewDefinitionSchema,
} from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { BallastError } from '@ballast/grpc-kit';
import { clone, create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { compileView, viewVersion } from './definition.js';
import { retailDefinition } from './testing/retail.js';

function refusal(mutate: (d: ReturnType<typeof retailDefinition>) => void): {
  field?: string | undefined;
  rule?: string | undefined;
} {
  const definition = retailDefinition();
  mutate(definition);
  try {
    compileView(definition);
  } catch (err) {
    expect(err).toBeInstanceOf(BallastError);
    expect((err as BallastError).code).toBe('invalid_argument');
    return { field: (err as BallastError).field, rule: (err as BallastError).rule };
  }
  throw new Error('the definition was accepted');
}

describe('feature view definitions', () => {
  it('are versioned by content: the same definition, the same version; any change, another', () => {
    const a = retailDefinition();
    const b = retailDefinition();
    expect(viewVersion(a)).toBe(viewVersion(b));
    expect(viewVersion(a)).toMatch(/^[0-9a-f]{64}$/);
    const changed = clone(FeatureViewDefinitionSchema, a);
    const rolling = changed.features[2]?.transform;
    if (rolling?.case === 'rolling') rolling.value.windowDays = 14;
    expect(viewVersion(changed)).not.toBe(viewVersion(a));
    // A round trip through the wire keeps the version.
    const wire = fromBinary(FeatureViewDefinitionSchema, toBinary(FeatureViewDefinitionSchema, a));
    expect(viewVersion(wire)).toBe(viewVersion(a));
    const view = compileView(a);
    expect(view.version).toBe(viewVersion(a));
    expect(view.featureNames).toContain('region_2');
  });

  it('refuses bad definitions with the path of the offending part', () => {
    expect(
      refusal(
        (d) =>
          (d.features[0] = create(FeatureSchema, {
            name: 'units',
            transform: { case: 'raw', value: { field: 'nope' } },
          })),
      ),
    ).toMatchObject({
      field: 'definition.features[0].raw.field',
      rule: expect.stringContaining('unknown field "nope"'),
    });
    expect(
      refusal((d) => {
        const t = d.features[1]?.transform;
        if (t?.case === 'lag') t.value.timeField = 'price';
      }),
    ).toMatchObject({
      field: 'definition.features[1].lag.time_field',
      rule: expect.stringContaining('timestamp'),
    });
    expect(
      refusal((d) => {
        const t = d.features[2]?.transform;
        if (t?.case === 'rolling') t.value.windowDays = 0;
      }),
    ).toEqual({ field: 'definition.features[2].rolling.window_days', rule: 'must be > 0, got 0' });
    expect(
      refusal((d) => {
        const t = d.features[1]?.transform;
        if (t?.case === 'lag') t.value.days = -3;
      }),
    ).toMatchObject({ field: 'definition.features[1].lag.days' });
    expect(refusal((d) => d.entityFields.push('store'))).toMatchObject({
      field: 'definition.entity_fields[2]',
      rule: expect.stringContaining('unknown entity field "store"'),
    });
    // Label leakage: a label read on the row itself, and a feature that reads it.
    expect(
      refusal((d) => {
        if (d.label) d.label.leadDays = 0;
      }),
    ).toMatchObject({
      field: 'definition.features[0].raw.field',
      rule: expect.stringContaining('label leakage'),
    });
    expect(
      refusal((d) => {
        if (d.label) d.label.leadDays = 0;
        d.features = d.features.filter((f) => f.transform.case === 'lag' || f.transform.case === 'calendar');
        d.features.push(
          create(FeatureSchema, {
            name: 'units_sum',
            transform: {
              case: 'rolling',
              value: { field: 'units', aggregation: Aggregation.SUM, windowDays: 3 },
            },
          }),
        );
      }),
    ).toMatchObject({
      field: 'definition.features[3].rolling.field',
      rule: expect.stringContaining('label leakage'),
    });
    expect(
      refusal((d) => {
        const t = d.features[8]?.transform;
        if (t?.case === 'ratio') t.value.denominator = 'units_next_day';
      }),
    ).toMatchObject({
      field: 'definition.features[8].ratio.denominator',
      rule: expect.stringContaining('label'),
    });
    expect(
      refusal((d) => d.features.push(clone(FeatureSchema, d.features[0] ?? create(FeatureSchema)))),
    ).toMatchObject({
      field: 'definition.features[11].name',
      rule: 'duplicate name units',
    });
    expect(refusal((d) => (d.name = 'Bad Name'))).toMatchObject({ field: 'definition.name' });
    // A field number this server does not know is refused, not ignored.
    expect(
      refusal((d) => {
        const label = d.label;
        if (label) label.$unknown = [{ no: 99, wireType: 0, data: new Uint8Array([1]) }];
      }),
    ).toMatchObject({ field: 'definition.label', rule: 'unknown field (number 99)' });
  });
});
