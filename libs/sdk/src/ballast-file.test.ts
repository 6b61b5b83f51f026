import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FeatureViewDefinitionSchema } from '@ballast/contracts/ballast/feature/v1/feature_pb.js';
import { fromJson, type JsonValue, toJson } from '@bufbuild/protobuf';
import { describe, expect, it } from 'vitest';
import { parseBallastFile, SCHEMA_PATH, writeBallastFile } from './ballast-file.js';
import { ballastFileSchema, toFileJson, toProtoJson } from './file-format.js';
import { inferFile } from './schema-infer.js';

describe('ballast.yaml', () => {
  it('publishes the JSON Schema the contracts give (npm run -w libs/sdk schema regenerates it)', () => {
    expect(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8'))).toEqual(ballastFileSchema());
  });

  it('names the file, line, column, path and rule of every problem at once', async () => {
    const text = [
      'datasets:',
      '  - name: weather',
      '    schema:',
      '      fields:',
      '        - name: wind',
      '          type: flaot',
      '      colour: red',
      'models:',
      '  - task: regression',
    ].join('\n');
    const err = await parseBallastFile(text, 'b.yaml').catch((e: Error) => e);
    expect((err as Error).message.split('\n')).toEqual([
      'b.yaml:7:15: /datasets/0/schema: unknown field "colour"',
      'b.yaml:6:17: /datasets/0/schema/fields/0/type: must be one of: float, int, string, bool, timestamp, categorical (any case)',
      'b.yaml:9:5: /models/0: missing required field "name"',
    ]);
  });

  it('takes short enum names in any case, and writes them back short', async () => {
    const file = await parseBallastFile(
      'featureViews:\n  - name: v\n    source: {dataset: d, fields: [{name: x, type: CATEGORICAL}]}\n    features: [{name: m, rolling: {field: x, aggregation: Mean, windowDays: 7}}]\n',
      'v.yaml',
    );
    const view = fromJson(
      FeatureViewDefinitionSchema,
      toProtoJson(FeatureViewDefinitionSchema, file.featureViews?.[0] as JsonValue) as JsonValue,
    );
    expect(view.source?.fields[0]?.type).toBe(6);
    const back = toFileJson(
      FeatureViewDefinitionSchema,
      toJson(FeatureViewDefinitionSchema, view) as JsonValue,
    );
    expect(back).toMatchObject({
      source: { fields: [{ type: 'categorical' }] },
      features: [{ rolling: { aggregation: 'mean' } }],
    });
  });

  it('infers types, required, ranges and vocabularies, as a file apply accepts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'infer-'));
    const csv = join(dir, 'w.csv');
    writeFileSync(
      csv,
      'date,rain,count,kind,note\n2024-01-01,0.5,3,sun,a\n2024-01-02,1.5,5,rain,\n2024-01-03,0,4,sun,c\n2024-01-04,2,7,sun,d\n',
    );
    const file = await inferFile(csv, { dataset: 'w', label: 'rain', entity: 'kind' });
    expect(file.datasets?.[0]?.schema).toEqual({
      // count's values are all distinct: the record's id; kind the entity the view is keyed by.
      eventIdField: 'count',
      entityFields: ['kind'],
      eventTimeField: 'date',
      fields: [
        { name: 'date', type: 'timestamp', required: true },
        { name: 'rain', type: 'float', required: true, min: 0, max: 3 },
        { name: 'count', type: 'int', required: true, min: 1, max: 9 },
        { name: 'kind', type: 'categorical', required: true, vocabulary: ['rain', 'sun'] },
        { name: 'note', type: 'string', nullable: true },
      ],
    });
    expect(await parseBallastFile(writeBallastFile(file), 'w.yaml')).toEqual(
      JSON.parse(JSON.stringify(file)),
    );
  });

  it('declares an event_id column (ingest fills it with a content hash) when no column is unique', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'infer-'));
    const csv = join(dir, 'w.csv');
    writeFileSync(csv, 'date,rain\n2024-01-01,0.5\n2024-01-02,0.5\n');
    const schema = (await inferFile(csv, { dataset: 'w' })).datasets?.[0]?.schema;
    expect(schema).toMatchObject({
      eventIdField: 'event_id',
      fields: [{ name: 'event_id', type: 'string', required: true }, { name: 'date' }, { name: 'rain' }],
    });
  });
});
