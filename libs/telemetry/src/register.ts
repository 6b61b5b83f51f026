// Preload: `node --import @ballast/telemetry/register dist/main.js`. It must run before the service
// imports @grpc/grpc-js, or grpc-js is never patched.
import { register } from 'node:module';
import { isMainThread } from 'node:worker_threads';
import { defaultInstrumentations, startTelemetry } from './sdk.js';

// --import also runs in every worker thread; one SDK per process is enough.
if (isMainThread && process.env.OTEL_SDK_DISABLED?.trim().toLowerCase() !== 'true') {
  const instrumentations = defaultInstrumentations();
  // An ESM `import` of grpc-js (a CommonJS package) does not go through require(), so
  // require-in-the-middle never sees it: on Node 20 grpc-js stays unpatched without this loader
  // hook. `include` limits import-in-the-middle to the modules the instrumentations patch, instead
  // of wrapping every module the service loads.
  const include = instrumentations.flatMap((i) =>
    i.getModuleDefinitions().map((definition) => definition.name),
  );
  register('import-in-the-middle/hook.mjs', import.meta.url, { data: { include } });
  startTelemetry({ instrumentations });
}
