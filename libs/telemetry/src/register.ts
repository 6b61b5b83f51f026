// Preload: `node --import @ballast/telemetry/register dist/main.js`. It must run before the service
// imports @grpc/grpc-js, or grpc-js is never patched.
import { instrumentProcess } from './sdk.js';

// --import also runs in every worker thread; instrumentProcess starts one SDK per process, in the main thread.
instrumentProcess();
