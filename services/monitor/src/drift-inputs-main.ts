import { readDriftInputs } from './drift-inputs.js';

/**
 * `node dist/drift-inputs-main.js <data dir | postgres URL> <model> <version> <feature> [segment]`:
 * prints readDriftInputs as JSON, so a test in another package (the real-data e2e test)
 * reads what monitor judged without importing the service.
 */
const [where, model, version, feature, segment = ''] = process.argv.slice(2);
if (!where || !model || !version || !feature) {
  process.stderr.write(
    'usage: drift-inputs-main <data dir | postgres URL> <model> <version> <feature> [segment]\n',
  );
  process.exit(2);
}
const inputs = await readDriftInputs(
  /^postgres(ql)?:\/\//.test(where) ? { url: where } : { dataDir: where },
  {
    model,
    version: Number(version),
    feature,
    segment,
  },
);
process.stdout.write(`${JSON.stringify(inputs)}\n`);
