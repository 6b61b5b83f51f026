import {
  MetricDirection,
  ModelVersionSchema,
  PromotionPolicySchema,
} from '@ballast/contracts/ballast/registry/v1/registry_pb.js';
import { create } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { describe, expect, it } from 'vitest';
import { aliasList, metricSummary, policyLine, versionRow } from './commands-models.js';

describe('models show', () => {
  it('summarizes the overall metrics per eval set, leaving per-segment ones to --version', () => {
    expect(
      metricSummary([
        {
          $typeName: 'ballast.registry.v1.Metric',
          name: 'mae',
          evalSet: 'holdout',
          segment: '',
          value: 1.234567,
        },
        { $typeName: 'ballast.registry.v1.Metric', name: 'rmse', evalSet: 'holdout', segment: '', value: 2 },
        {
          $typeName: 'ballast.registry.v1.Metric',
          name: 'mae',
          evalSet: 'holdout',
          segment: 'warehouse_id=W1',
          value: 9,
        },
        { $typeName: 'ballast.registry.v1.Metric', name: 'loss', evalSet: '', segment: '', value: 0.5 },
      ]),
    ).toBe('mae=1.235 rmse=2 (holdout); loss=0.5');
    expect(metricSummary([])).toBe('-');
  });

  it('says what the promotion gate asks', () => {
    expect(policyLine(undefined)).toBe('none (every promotion passes the gate)');
    expect(
      policyLine(
        create(PromotionPolicySchema, {
          primaryMetric: 'mae',
          evalSet: 'holdout',
          direction: MetricDirection.LOWER_IS_BETTER,
          minImprovement: 0.02,
          maxSegmentRegression: 0.1,
        }),
      ),
    ).toBe('mae lower is better on holdout, at least 2% better, no segment more than 10% worse');
  });

  it('shows a version with the data and view it was trained on, and its aliases', () => {
    const v = create(ModelVersionSchema, {
      model: 'demand',
      version: 2,
      artifactDigest: 'f'.repeat(64),
      createTime: timestampFromMs(Date.UTC(2026, 0, 2, 3, 4, 5)),
      lineage: {
        dataset: { name: 'sales', version: 'a'.repeat(64) },
        featureView: { name: 'demand', version: 'b'.repeat(64) },
      },
      metrics: [{ name: 'mae', evalSet: 'holdout', value: 3 }],
      aliases: ['production'],
    });
    expect(versionRow(v)).toEqual([
      'v2',
      '2026-01-02 03:04:05',
      'ffffffffffff',
      'sales@aaaaaaaaaaaa',
      'demand@bbbbbbbbbbbb',
      'mae=3 (holdout)',
      'production',
    ]);
    expect(aliasList({ production: 2, candidate: 3 })).toBe('production=v2 candidate=v3');
    expect(aliasList({})).toBe('(no aliases)');
  });
});
