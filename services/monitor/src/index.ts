// The monitor service runs as a process (src/main.ts); it exports nothing for other packages.
// What its drift statistics are computed on can be read back with `node dist/drift-inputs-main.js`
// (tests compare them with scipy).
export {};
