import { canonicalJson, type ModelSpec, payloadSchemas } from '@ballast/queue';
import { UnrecoverableError } from 'bullmq';

/**
 * A model spec travels in the job and is recorded in the version's lineage, both as one
 * canonical JSON (`spec`, what a retraining or `--reproduce` reads back) and as flat
 * hyper-parameters (what CompareVersions diffs leaf by leaf).
 */
const SPEC_KEY = 'spec';

export function specHyperparameters(spec: ModelSpec): Record<string, string> {
  return {
    [SPEC_KEY]: canonicalSpec(spec),
    hidden_units: spec.hiddenUnits.join(','),
    activation: spec.activation ?? 'relu',
    dropout: String(spec.dropout ?? 0),
    epochs: String(spec.epochs),
    batch_size: String(spec.batchSize),
    learning_rate: String(spec.learningRate),
    early_stopping: spec.earlyStopping
      ? `patience=${spec.earlyStopping.patience},min_delta=${spec.earlyStopping.minDelta ?? 0}`
      : 'off',
  };
}

/** Keys sorted, so equal specs serialise to equal bytes. */
export const canonicalSpec = (spec: ModelSpec): string => canonicalJson(spec);

/** The spec a version was trained with, read back from its lineage. */
export function specFromHyperparameters(hyperparameters: Record<string, string>): ModelSpec | undefined {
  const text = hyperparameters[SPEC_KEY];
  if (!text) return undefined;
  const parsed = payloadSchemas['training.run'].safeParse({
    model: 'x',
    reason: 'x',
    spec: JSON.parse(text),
  });
  if (!parsed.success || !parsed.data.spec)
    throw new UnrecoverableError(
      `the previous version's recorded spec no longer parses: ${text.slice(0, 200)}`,
    );
  return parsed.data.spec;
}
