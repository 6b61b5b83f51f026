/**
 * How the `ballast` CLI writes: lines through `print` (so tests and the CLI share one path),
 * tables with aligned columns, JSON for `--json`, and progress that redraws one line on a
 * terminal and writes plain lines anywhere else.
 */
export type Print = (line: string) => void;

/** Where progress may redraw in place: a terminal's stdout. */
export interface ProgressStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

/** What a command writes with, and the environment it reads. */
export interface CommandIo {
  env: NodeJS.ProcessEnv;
  print: Print;
  /** stdout, for progress that redraws on a terminal. */
  stdout?: ProgressStream;
}

/** Rows as text, each column padded to its widest cell (the last one is not padded). */
export function table(rows: readonly (readonly string[])[], indent = ''): string[] {
  const widths: number[] = [];
  for (const row of rows)
    row.forEach((cell, i) => {
      widths[i] = Math.max(widths[i] ?? 0, cell.length);
    });
  return rows.map((row) =>
    `${indent}${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ')}`.trimEnd(),
  );
}

/** Prints a table: a header row, then the rows. */
export function printTable(
  print: Print,
  header: readonly string[],
  rows: readonly (readonly string[])[],
  indent = '',
) {
  for (const line of table([header, ...rows], indent)) print(line);
}

/** `--json` output: one document, bigints as numbers when they fit (else strings). */
export function printJson(print: Print, value: unknown): void {
  print(
    JSON.stringify(
      value,
      (_key, v: unknown) =>
        typeof v === 'bigint' ? (Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()) : v,
      2,
    ),
  );
}

export interface Progress {
  /** Shows the current state; the same line twice draws nothing new. */
  update(line: string): void;
  /** Ends the progress (on a terminal, moves past the redrawn line). */
  done(): void;
}

/**
 * Progress lines. On a terminal (`stream.isTTY`) one line is redrawn in place; otherwise (a
 * pipe, a file, a CI log) each new state is one plain line through `print`, with no carriage
 * returns or escape codes.
 */
export function progress(print: Print, stream?: ProgressStream): Progress {
  let last = '';
  let drawn = false;
  const tty = stream?.isTTY === true;
  return {
    update(line) {
      if (line === last) return;
      last = line;
      if (!tty || !stream) {
        print(line);
        return;
      }
      stream.write(`\r\x1b[2K${line}`);
      drawn = true;
    },
    done() {
      if (drawn) stream?.write('\n');
      drawn = false;
    },
  };
}
