import { type FileHandle, mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** One record as a commit reads it: what the content hash and the version summary need. */
export interface SortRecord {
  eventId: string;
  seq: string;
  source: string;
  data: string;
}

export interface EventIdSortOptions {
  /**
   * Records sorted in memory at a time (one run). Sorting one run holds the event loop for
   * ~25 ms at 50k records on a quiet machine; memory is about a kilobyte a record.
   */
  runSize?: number;
  /**
   * Runs merged at once (one open file and read buffer each); more runs are merged in rounds,
   * each an extra pass over the records. The defaults merge 25.6M records in one round.
   */
  fanIn?: number;
  /** Where run files go (a fresh folder under it, removed by dispose); the OS temp folder by default. */
  directory?: string;
}

const DEFAULTS = { runSize: 50_000, fanIn: 512 };
/** Records handed to the caller at a time from the merge (the caller yields the loop between). */
const BATCH = 2_000;
/** Records sorted at once, between turns of the event loop (a few milliseconds each). */
const SLICE = 5_000;
/** Bytes read from a run file at a time (times fanIn is the merge's read buffering). */
const READ_BLOCK = 64 * 1024;
const WRITE_BLOCK = 1024 * 1024;
const HEADER = 16;

/**
 * A key whose UTF-16 order (JS's `<`) is the event id's code-point order, which is the
 * bytewise UTF-8 order of the "C" collation and of the content hash. The two differ only
 * where surrogates (characters past U+FFFF) meet U+E000..U+FFFF, so only ids holding such
 * characters are rewritten: U+E000..U+FFFF move down by 0x800 and surrogates up by 0x2000,
 * which puts every character past U+FFFF above every other.
 */
export function codePointKey(id: string): string {
  if (!/[\uD800-\uFFFF]/.test(id)) return id;
  let out = '';
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    out += String.fromCharCode(c >= 0xe000 ? c - 0x800 : c >= 0xd800 ? c + 0x2000 : c);
  }
  return out;
}

interface Keyed {
  key: string;
  record: SortRecord;
}

const byKey = (a: Keyed, b: Keyed) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Puts a version's records in event-id order with bounded memory, as an external merge sort:
 * records come in the order the table stores them (arrival order), runs of `runSize` are
 * sorted in memory and written to temporary files, and the runs are merged. A commit used to
 * walk the primary key instead, and since event ids are unrelated to arrival order each
 * record was a read of a random table page: once the table outgrew the database's buffer
 * cache (128 MB by default on both backends) every record cost a page read, and the commit
 * grew faster than its records. Here every record is read from the table once, in storage
 * order, and written and read back once (twice past runSize * fanIn records).
 */
/** Run folders are `ballast-commit-<pid>-<random>`: the pid tells a dead commit's from a live one's. */
const FOLDER_PREFIX = 'ballast-commit-';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class EventIdSort {
  /**
   * Removes the run folders of commits whose process is gone: a commit that ends, well or
   * not, removes its own, but a process killed mid-commit (SIGKILL, OOM, power) leaves them,
   * up to the version's size on disk. Run at start-up, before any commit of this process: a
   * folder with this process's pid is a dead predecessor's (a container restarts as pid 1).
   * Returns the folders removed.
   */
  static async sweep(parent: string = tmpdir()): Promise<string[]> {
    const removed: string[] = [];
    for (const name of await readdir(parent).catch(() => [] as string[])) {
      const pid = Number(name.slice(FOLDER_PREFIX.length).split('-')[0]);
      if (!name.startsWith(FOLDER_PREFIX) || !Number.isInteger(pid) || pid <= 0) continue;
      if (pid !== process.pid && alive(pid)) continue;
      await rm(join(parent, name), { recursive: true, force: true });
      removed.push(name);
    }
    return removed;
  }

  private readonly runSize: number;
  private readonly fanIn: number;
  private readonly parent: string;
  private folder: string | undefined;
  private pending: Keyed[] = [];
  private runs: string[] = [];
  private named = 0;

  constructor(options: EventIdSortOptions = {}) {
    this.runSize = options.runSize ?? DEFAULTS.runSize;
    this.fanIn = Math.max(2, options.fanIn ?? DEFAULTS.fanIn);
    this.parent = options.directory ?? tmpdir();
  }

  /** Run files written so far (for tests and progress). */
  get runCount(): number {
    return this.runs.length;
  }

  async add(records: readonly SortRecord[]): Promise<void> {
    for (const record of records) {
      this.pending.push({ key: codePointKey(record.eventId), record });
      if (this.pending.length >= this.runSize) await this.spill();
    }
  }

  /**
   * The records in event-id order, in batches. A version that fits one run is sorted in
   * memory and never touches the disk.
   */
  async *sorted(): AsyncGenerator<SortRecord[]> {
    if (this.runs.length === 0) {
      yield* mergeSources(await this.sortPending());
      return;
    }
    if (this.pending.length > 0) await this.spill();
    while (this.runs.length > this.fanIn) {
      // Too many runs to hold one read buffer each: merge them in groups into longer runs.
      const next: string[] = [];
      for (let i = 0; i < this.runs.length; i += this.fanIn) {
        const group = this.runs.slice(i, i + this.fanIn);
        next.push(await this.writeRun(merge(group)));
        await Promise.all(group.map((path) => rm(path, { force: true })));
      }
      this.runs = next;
    }
    yield* merge(this.runs);
  }

  /** Removes the run files; call it whether or not the sort finished. */
  async dispose(): Promise<void> {
    this.pending = [];
    this.runs = [];
    if (this.folder) await rm(this.folder, { recursive: true, force: true });
    this.folder = undefined;
  }

  /**
   * Sorts the pending records in slices, letting the event loop run between them: one sort
   * of a whole 50k-record run held the loop for 30-200 ms on a loaded machine. The slices are
   * merged as the run is written (or read, for a run that never spills).
   */
  private async sortPending(): Promise<ArraySource[]> {
    const pending = this.pending;
    this.pending = [];
    const slices: ArraySource[] = [];
    for (let i = 0; i < pending.length; i += SLICE) {
      slices.push(new ArraySource(pending.slice(i, i + SLICE).sort(byKey)));
      await yieldToLoop();
    }
    return slices;
  }

  private async spill(): Promise<void> {
    this.runs.push(await this.writeRun(mergeSources(await this.sortPending())));
  }

  private async writeRun(source: AsyncIterable<SortRecord[]> | Iterable<SortRecord[]>): Promise<string> {
    this.folder ??= await mkdtemp(join(this.parent, `${FOLDER_PREFIX}${process.pid}-`));
    const path = join(this.folder, `run-${this.named++}`);
    const file = await open(path, 'w');
    try {
      const writer = new RunWriter(file);
      for await (const batch of source) {
        for (const record of batch) {
          const full = writer.write(record);
          if (full) await full;
        }
      }
      await writer.flush();
    } finally {
      await file.close();
    }
    return path;
  }
}

/** A sorted stream of records, as the merge reads it. */
interface Source {
  /** The next record, or undefined at the end. */
  readonly head: Keyed | undefined;
  /** Moves past the head; a promise when the next head has to be read first. */
  advance(): Promise<void> | undefined;
}

class ArraySource implements Source {
  private at = 0;
  constructor(private readonly items: Keyed[]) {}
  get head(): Keyed | undefined {
    return this.items[this.at];
  }
  advance(): undefined {
    this.at++;
    return undefined;
  }
}

/**
 * Run files hold records back to back: four 32-bit lengths (event id, seq, source, data, in
 * UTF-8 bytes) and then the four strings, so any text round-trips unchanged.
 */
class RunWriter {
  private buffer = Buffer.allocUnsafe(WRITE_BLOCK);
  private used = 0;

  constructor(private readonly file: FileHandle) {}

  /** Resolves at once unless the buffer had to be written out. */
  write(r: SortRecord): Promise<void> | undefined {
    // UTF-8 takes at most 3 bytes per UTF-16 unit, so this bound never overflows.
    const most = HEADER + 3 * (r.eventId.length + r.seq.length + r.source.length + r.data.length);
    if (this.used + most > this.buffer.length) return this.flush().then(() => this.put(r, most));
    this.put(r, most);
    return undefined;
  }

  private put(r: SortRecord, most: number): void {
    if (most > this.buffer.length) this.buffer = Buffer.allocUnsafe(most);
    const b = this.buffer;
    const start = this.used;
    let at = start + HEADER;
    const id = b.write(r.eventId, at, 'utf8');
    at += id;
    const seq = b.write(r.seq, at, 'latin1'); // digits only
    at += seq;
    const source = b.write(r.source, at, 'utf8');
    at += source;
    const data = b.write(r.data, at, 'utf8');
    b.writeUInt32LE(id, start);
    b.writeUInt32LE(seq, start + 4);
    b.writeUInt32LE(source, start + 8);
    b.writeUInt32LE(data, start + 12);
    this.used = at + data;
  }

  async flush(): Promise<void> {
    if (this.used > 0) await this.file.write(this.buffer, 0, this.used);
    this.used = 0;
  }
}

/**
 * Reads a run file back in blocks and decodes one record at a time, as the merge takes it.
 * Decoding a whole block ahead held a few hundred records a run until the merge reached
 * them; with 200 runs (a 10M-record version) that was 60k records alive at once, which
 * outlived the young generation, and pass two cost 40% more a record than at 1M.
 * For the same reason each reader reads into one buffer of its own, reused for every block
 * (decoded strings are copies, nothing keeps a view of it): a fresh 64 KiB block per read
 * lived until the merge had taken its records, which is longer the more runs there are, so
 * at 4M records (80 runs) blocks outlived scavenges and GC cost 2.5x as much a second as at 1M.
 */
class RunReader implements Source {
  head: Keyed | undefined;
  private buffer: Buffer = Buffer.allocUnsafe(READ_BLOCK);
  /** Decoded up to `at`; read up to `end`. */
  private at = 0;
  private end = 0;
  private ended = false;

  private constructor(private readonly file: FileHandle) {}

  static async open(path: string): Promise<RunReader> {
    const reader = new RunReader(await open(path, 'r'));
    await reader.advance();
    return reader;
  }

  /** Moves to the next record; a promise when it has to be read from the file first. */
  advance(): Promise<void> | undefined {
    this.head = this.decode();
    if (this.head !== undefined || this.ended) return undefined;
    return this.fill().then(() => {
      this.head = this.decode();
    });
  }

  async close(): Promise<void> {
    await this.file.close();
  }

  /** The next whole record in the buffer, or undefined. */
  private decode(): Keyed | undefined {
    const data = this.buffer;
    const at = this.at;
    if (this.end - at < HEADER) return undefined;
    const a = at + HEADER + data.readUInt32LE(at);
    const b = a + data.readUInt32LE(at + 4);
    const c = b + data.readUInt32LE(at + 8);
    const d = c + data.readUInt32LE(at + 12);
    if (d > this.end) return undefined;
    this.at = d;
    const eventId = data.toString('utf8', at + HEADER, a);
    return {
      key: codePointKey(eventId),
      record: {
        eventId,
        seq: data.toString('latin1', a, b),
        source: data.toString('utf8', b, c),
        data: data.toString('utf8', c, d),
      },
    };
  }

  /**
   * Moves the undecoded rest to the front and reads after it until a whole record is
   * buffered or the file ends; the buffer grows only for a record larger than it.
   */
  private async fill(): Promise<void> {
    for (;;) {
      const rest = this.end - this.at;
      const wanted = this.wanted();
      if (wanted > this.buffer.length) {
        const larger = Buffer.allocUnsafe(Math.max(wanted, rest + READ_BLOCK));
        this.buffer.copy(larger, 0, this.at, this.end);
        this.buffer = larger;
      } else {
        this.buffer.copyWithin(0, this.at, this.end);
      }
      this.at = 0;
      this.end = rest;
      const { bytesRead } = await this.file.read(this.buffer, rest, this.buffer.length - rest, null);
      this.end += bytesRead;
      if (bytesRead === 0) {
        if (rest > 0) throw new Error('run file ends inside a record');
        this.ended = true;
        return;
      }
      const whole = this.wanted();
      if (whole > 0 && whole <= this.end) return;
    }
  }

  /** Bytes the record at `at` takes, once its header is read, else 0. */
  private wanted(): number {
    if (this.end - this.at < HEADER) return 0;
    let size = HEADER;
    for (let i = 0; i < 4; i++) size += this.buffer.readUInt32LE(this.at + 4 * i);
    return size;
  }
}

/** Merges sorted run files. */
async function* merge(paths: readonly string[]): AsyncGenerator<SortRecord[]> {
  const readers = await Promise.all(paths.map((path) => RunReader.open(path)));
  try {
    yield* mergeSources(readers);
  } finally {
    await Promise.all(readers.map((r) => r.close()));
  }
}

/**
 * K-way merge of sorted sources through a tree of losers, in batches. Each record costs
 * ceil(log2 k) key comparisons, one per level on the way from its source's leaf to the
 * root; a binary heap's sift-down costs about twice that, and with k growing with the
 * version (20 runs at 1M records, 200 at 10M) the merge is the one part of a commit whose
 * cost per record grows with its size.
 */
async function* mergeSources(sources: readonly Source[]): AsyncGenerator<SortRecord[]> {
  const k = sources.length;
  if (k === 0) return;
  // Whether source a's head goes first; an ended source goes after everything, and ties
  // (never between distinct event ids) go to the lower index.
  const first = (a: number, b: number): boolean => {
    const x = (sources[a] as Source).head;
    const y = (sources[b] as Source).head;
    if (x === undefined) return false;
    if (y === undefined) return true;
    return x.key < y.key || (x.key === y.key && a < b);
  };
  // Node i (1..k-1) holds the loser of the match played there; leaves are k..2k-1, source
  // j at leaf k + j; losers[0] holds the overall winner.
  const losers = new Int32Array(Math.max(k, 1));
  const play = (node: number): number => {
    if (node >= k) return node - k;
    const left = play(2 * node);
    const right = play(2 * node + 1);
    const [win, lose] = first(left, right) ? [left, right] : [right, left];
    losers[node] = lose;
    return win;
  };
  losers[0] = play(1);
  let batch: SortRecord[] = [];
  for (;;) {
    let winner = losers[0] as number;
    const source = sources[winner] as Source;
    const head = source.head;
    if (head === undefined) break; // the winner has ended, so every source has
    batch.push(head.record);
    const refill = source.advance();
    if (refill) await refill;
    for (let node = (winner + k) >> 1; node >= 1; node >>= 1) {
      const other = losers[node] as number;
      if (first(other, winner)) {
        losers[node] = winner;
        winner = other;
      }
    }
    losers[0] = winner;
    if (batch.length >= BATCH) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}
