import { writeReport } from './report.js';

// Renders REPORT.md once every test file of the run has recorded its scenarios.
export function teardown() {
  writeReport();
}
