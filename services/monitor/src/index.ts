// The monitor service runs as a process (src/main.ts); for other packages it exports only a
// read of what its drift statistics are computed on (tests compare them with scipy).
export { type DriftInputs, type DriftInputsQuery, readDriftInputs } from './drift-inputs.js';
