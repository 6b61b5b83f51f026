// The monitor service runs as a process (src/main.ts); it exports nothing for other packages.
export {};
