import { type FileHandle, mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { versionOrderKey } from './content-hash.js';

/** One record as a commit reads it: what the content hash and the version summary need. */
export interface SortRecord {
  eventId: string;
  seq: string;
  source: string;
  data: string;
}

/** A record and its place in the version's order (versionOrderKey of its event id). */
export interface Keyed {
  key: string;
  record: SortRecord;
}

export interface HashOrderSortOptions {
  /**
   * Records a bucket is meant to hold, sorted in memory at once: the version is dealt into
   * ceil(records / bucketSize) buckets. Memory is about a kilobyte a record.
   */
  bucketSize?: number;
  /**
   * Buckets written at once (one open file and write buffer each). A larger version gets
   * larger buckets, and a bucket past twice bucketSize is dealt again, one level down.
   * The defaults deal 25.6M records in one pass.
   */
  maxBuckets?: number;
  /** Where bucket files go (a fresh folder under it, removed by dispose); the OS temp folder by default. */
  directory?: string;
}

const DEFAULTS = { bucketSize: 50_000, maxBuckets: 512 };
/** Records handed to the caller at a time (the caller yields the loop between). */
const BATCH = 2_000;
/** Records sorted at once, between turns of the event loop (a few milliseconds each). */
const SLICE = 5_000;
/** Bytes read from a bucket file at a time. */
const READ_BLOCK = 64 * 1024;
/** Bytes buffered per bucket before a write (times maxBuckets is the deal's buffering). */
const WRITE_BLOCK = 64 * 1024;
/** Four 32-bit lengths, then the 32-byte order key. */
const HEADER = 16;
const KEY_BYTES = 32;

/** Run folders are `ballast-commit-<pid>-<random>`: the pid tells a dead commit's from a live one's. */
const FOLDER_PREFIX = 'ballast-commit-';

const byKey = (a: Keyed, b: Keyed) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The first 48 bits of an order key as an integer (exact in a double): where it falls, for dealing. */
function prefixOf(key: string): number {
  return (
    key.charCodeAt(0) * 2 ** 40 +
    key.charCodeAt(1) * 2 ** 32 +
    key.charCodeAt(2) * 2 ** 24 +
    key.charCodeAt(3) * 2 ** 16 +
    key.charCodeAt(4) * 2 ** 8 +
    key.charCodeAt(5)
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, owned by someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Puts a version's records in its content-hash order (content-hash.ts) in time linear in
 * the records and with bounded memory, as a bucket sort: records come in the order the
 * table stores them (arrival order), and each is dealt by the leading bits of its key (a
 * sha256 digest, so evenly) into one of ceil(records / bucketSize) bucket files covering
 * consecutive ranges of keys; then each bucket is read back, sorted in memory and handed
 * on, in key order. Every bucket holds about bucketSize records whatever the version's
 * size, so each record costs the same at 1M records as at 10M: one write, one read and a
 * sort among ~50k. (The external merge sort by event id this replaced cost log2 of the
 * version's runs a record in the merge.) A bucket that comes out larger than twice
 * bucketSize (more records than announced, or event ids chosen to share digest bits) is
 * dealt again over its own range of keys before it is sorted.
 */
export class HashOrderSort {
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

  private readonly bucketSize: number;
  private readonly maxBuckets: number;
  private readonly parent: string;
  private folder: string | undefined;
  /** Records held in memory while the version fits one bucket. */
  private pending: Keyed[] = [];
  private buckets: BucketFiles | undefined;
  private named = 0;
  /** Bucket files written so far, at every level (for tests). */
  filesWritten = 0;

  /** `expected`: the records the version holds (how many buckets to deal them into). */
  constructor(
    private readonly expected: number,
    options: HashOrderSortOptions = {},
  ) {
    this.bucketSize = Math.max(1, options.bucketSize ?? DEFAULTS.bucketSize);
    this.maxBuckets = Math.max(2, options.maxBuckets ?? DEFAULTS.maxBuckets);
    this.parent = options.directory ?? tmpdir();
  }

  async add(records: readonly SortRecord[]): Promise<void> {
    for (const record of records) {
      const item = { key: versionOrderKey(record.eventId), record };
      if (this.buckets) {
        const full = this.buckets.add(item);
        if (full) await full;
      } else {
        this.pending.push(item);
        if (this.expected > this.bucketSize || this.pending.length > 2 * this.bucketSize)
          await this.startDealing();
      }
    }
  }

  /** The records in key order, in batches. A version that fits one bucket never touches the disk. */
  async *sorted(): AsyncGenerator<Keyed[]> {
    if (!this.buckets) {
      yield* this.sortInMemory(this.pending);
      this.pending = [];
      return;
    }
    const buckets = this.buckets;
    this.buckets = undefined;
    yield* this.drain(buckets);
  }

  /** Removes the bucket files; call it whether or not the sort finished. */
  async dispose(): Promise<void> {
    this.pending = [];
    await this.buckets?.close();
    this.buckets = undefined;
    if (this.folder) await rm(this.folder, { recursive: true, force: true });
    this.folder = undefined;
  }

  /** Moves from memory to bucket files, dealing what is held so far. */
  private async startDealing(): Promise<void> {
    const count = Math.ceil(Math.max(this.expected, this.pending.length) / this.bucketSize);
    this.buckets = await this.openBuckets(count, 0, 2 ** 48 - 1);
    for (const item of this.pending) {
      const full = this.buckets.add(item);
      if (full) await full;
    }
    this.pending = [];
  }

  private async openBuckets(count: number, low: number, high: number): Promise<BucketFiles> {
    this.folder ??= await mkdtemp(join(this.parent, `${FOLDER_PREFIX}${process.pid}-`));
    const folder = this.folder;
    const first = this.named;
    const n = Math.min(this.maxBuckets, Math.max(1, count));
    this.named += n;
    return new BucketFiles(n, low, high, (i) => join(folder, `bucket-${first + i}`));
  }

  /** Hands on each bucket's records in key order, dealing an oversized bucket again first. */
  private async *drain(buckets: BucketFiles): AsyncGenerator<Keyed[]> {
    await buckets.finish();
    this.filesWritten += buckets.opened;
    for (let i = 0; i < buckets.count; i++) {
      const bucket = buckets.written(i);
      if (!bucket) continue;
      const split = bucket.records > 2 * this.bucketSize && bucket.high > bucket.low;
      if (split) {
        const deeper = await this.openBuckets(
          Math.ceil(bucket.records / this.bucketSize),
          bucket.low,
          bucket.high,
        );
        const reader = await RunReader.open(bucket.path);
        try {
          while (reader.head) {
            const full = deeper.add(reader.head);
            if (full) await full;
            const more = reader.advance();
            if (more) await more;
          }
        } catch (err) {
          await deeper.close();
          throw err;
        } finally {
          await reader.close();
          await rm(bucket.path, { force: true });
        }
        yield* this.drain(deeper);
      } else {
        const bytes = await readFile(bucket.path);
        await rm(bucket.path, { force: true });
        yield* sortBucket(bytes);
      }
    }
  }

  /**
   * Sorts records in slices, letting the event loop run between them (one sort of 50k
   * records held the loop for 30-200 ms on a loaded machine), and merges the slices.
   */
  private async *sortInMemory(items: Keyed[]): AsyncGenerator<Keyed[]> {
    const slices: Keyed[][] = [];
    for (let i = 0; i < items.length; i += SLICE) {
      slices.push(items.slice(i, i + SLICE).sort(byKey));
      await yieldToLoop();
    }
    yield* mergeSlices(slices);
  }
}

/** One bucket file once dealt: its path, its records and the range of key prefixes in it. */
interface WrittenBucket {
  path: string;
  records: number;
  low: number;
  high: number;
}

/**
 * `count` bucket files over the key prefixes low..high (inclusive), in order: a record goes
 * to floor((prefix - low) / (high - low + 1) * count), which never decreases as the key
 * grows, so the buckets read in turn are in key order. Files are opened on their first record.
 */
class BucketFiles {
  private readonly writers: (RunWriter | undefined)[];
  private readonly files: (Promise<FileHandle> | undefined)[];
  private readonly stats: { records: number; low: number; high: number }[];
  private readonly scale: number;
  /** Files opened (buckets that got a record). */
  opened = 0;

  constructor(
    readonly count: number,
    private readonly low: number,
    high: number,
    private readonly pathOf: (i: number) => string,
  ) {
    this.writers = new Array(count).fill(undefined);
    this.files = new Array(count).fill(undefined);
    this.stats = Array.from({ length: count }, () => ({
      records: 0,
      low: Number.POSITIVE_INFINITY,
      high: Number.NEGATIVE_INFINITY,
    }));
    this.scale = count / (high - low + 1);
  }

  /** Resolves at once unless a bucket's buffer had to be written out (or its file opened). */
  add(item: Keyed): Promise<void> | undefined {
    const prefix = prefixOf(item.key);
    const i = Math.min(this.count - 1, Math.floor((prefix - this.low) * this.scale));
    const s = this.stats[i] as { records: number; low: number; high: number };
    s.records++;
    if (prefix < s.low) s.low = prefix;
    if (prefix > s.high) s.high = prefix;
    const writer = this.writers[i];
    if (writer) return writer.write(item);
    return this.openWriter(i).then((w) => w.write(item));
  }

  /** Writes out every buffer and closes the files. */
  async finish(): Promise<void> {
    for (const writer of this.writers) await writer?.flush();
    await this.close();
  }

  async close(): Promise<void> {
    await Promise.all(this.files.map(async (file) => (await file)?.close()));
    this.files.fill(undefined);
  }

  written(i: number): WrittenBucket | undefined {
    const s = this.stats[i] as { records: number; low: number; high: number };
    return s.records > 0 ? { path: this.pathOf(i), ...s } : undefined;
  }

  private async openWriter(i: number): Promise<RunWriter> {
    let file = this.files[i];
    if (!file) {
      file = open(this.pathOf(i), 'w');
      this.files[i] = file;
      this.opened++;
    }
    const handle = await file;
    let writer = this.writers[i];
    if (!writer) {
      writer = new RunWriter(handle);
      this.writers[i] = writer;
    }
    return writer;
  }
}

/**
 * Bucket files hold records back to back: four 32-bit lengths (event id, seq, source, data,
 * in UTF-8 bytes), the 32-byte order key, and then the four strings, so any text
 * round-trips unchanged and the key is not computed twice.
 */
class RunWriter {
  private buffer = Buffer.allocUnsafe(WRITE_BLOCK);
  private used = 0;

  constructor(private readonly file: FileHandle) {}

  /** Resolves at once unless the buffer had to be written out. */
  write(item: Keyed): Promise<void> | undefined {
    const r = item.record;
    // UTF-8 takes at most 3 bytes per UTF-16 unit, so this bound never overflows.
    const most = HEADER + KEY_BYTES + 3 * (r.eventId.length + r.seq.length + r.source.length + r.data.length);
    if (this.used + most > this.buffer.length) return this.flush().then(() => this.put(item, most));
    this.put(item, most);
    return undefined;
  }

  private put(item: Keyed, most: number): void {
    if (most > this.buffer.length) this.buffer = Buffer.allocUnsafe(most);
    const r = item.record;
    const b = this.buffer;
    const start = this.used;
    b.write(item.key, start + HEADER, KEY_BYTES, 'latin1');
    let at = start + HEADER + KEY_BYTES;
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
 * Reads a bucket file back in blocks into one buffer of its own, reused for every block
 * (decoded strings are copies, nothing keeps a view of it), and decodes a record at a time.
 */
class RunReader {
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
    const at = this.at;
    const size = this.wanted();
    if (size === 0 || at + size > this.end) return undefined;
    this.at = at + size;
    return decodeAt(this.buffer, at);
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
        if (rest > 0) throw new Error('bucket file ends inside a record');
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
    let size = HEADER + KEY_BYTES;
    for (let i = 0; i < 4; i++) size += this.buffer.readUInt32LE(this.at + 4 * i);
    return size;
  }
}

/** Records a bucket may hold for sortBucket's packed order (the index takes 17 bits). */
const PACKED_MAX = 2 ** 17;

/**
 * One bucket file's records in key order, decoded only as they are handed on. The file is
 * read whole into one buffer (outside the JS heap), and a BigUint64Array holds per record
 * the key's first 47 bits above its index: one native numeric sort orders it, with no JS
 * object per record until the record is decoded for the caller, so records live a batch
 * long instead of a bucket long (objects alive across a bucket's ~0.3 s were promoted out
 * of the young generation, and their collection paused the service ~100 ms at a time at
 * 10M records). Records whose 47 bits tie (a few in a 10M commit) are put in order by the
 * whole key.
 */
export function* sortBucket(bytes: Buffer): Generator<Keyed[]> {
  const offsets: number[] = [];
  for (let at = 0; at < bytes.length; ) {
    const start = at;
    offsets.push(start);
    at += HEADER + KEY_BYTES;
    for (let i = 0; i < 4; i++) at += bytes.readUInt32LE(start + 4 * i);
  }
  if (offsets.length === 0) return;
  if (offsets.length >= PACKED_MAX) {
    // Only a bucket of records that share 48 key bits gets this large: order it by objects.
    const items = offsets.map((at) => decodeAt(bytes, at));
    items.sort(byKey);
    for (let i = 0; i < items.length; i += BATCH) yield items.slice(i, i + BATCH);
    return;
  }
  const packed = new BigUint64Array(offsets.length);
  const words = new Uint32Array(packed.buffer); // little-endian: word 2i low, 2i + 1 high
  for (let i = 0; i < offsets.length; i++) {
    const k = (offsets[i] as number) + HEADER;
    words[2 * i + 1] = bytes.readUInt32BE(k);
    words[2 * i] = ((((bytes[k + 4] as number) << 7) | ((bytes[k + 5] as number) >> 1)) << 17) | i;
  }
  packed.sort();
  const order = new Uint32Array(offsets.length);
  for (let i = 0; i < order.length; i++) order[i] = (words[2 * i] as number) & (PACKED_MAX - 1);
  // Runs that tie on the packed bits, put in order by the whole key.
  for (let i = 0; i < order.length; ) {
    let j = i + 1;
    while (
      j < order.length &&
      words[2 * j + 1] === words[2 * i + 1] &&
      (words[2 * j] as number) >>> 17 === (words[2 * i] as number) >>> 17
    )
      j++;
    if (j - i > 1) {
      const run = Array.from(order.subarray(i, j)).sort((a, b) => {
        const x = (offsets[a] as number) + HEADER;
        const y = (offsets[b] as number) + HEADER;
        return bytes.compare(bytes, y, y + KEY_BYTES, x, x + KEY_BYTES);
      });
      order.set(run, i);
    }
    i = j;
  }
  for (let i = 0; i < order.length; i += BATCH) {
    const batch: Keyed[] = [];
    for (let j = i; j < Math.min(order.length, i + BATCH); j++)
      batch.push(decodeAt(bytes, offsets[order[j] as number] as number));
    yield batch;
  }
}

/** The record at `at` in a bucket file's bytes. */
function decodeAt(bytes: Buffer, at: number): Keyed {
  const a = at + HEADER + KEY_BYTES + bytes.readUInt32LE(at);
  const b = a + bytes.readUInt32LE(at + 4);
  const c = b + bytes.readUInt32LE(at + 8);
  const d = c + bytes.readUInt32LE(at + 12);
  return {
    key: bytes.toString('latin1', at + HEADER, at + HEADER + KEY_BYTES),
    record: {
      eventId: bytes.toString('utf8', at + HEADER + KEY_BYTES, a),
      seq: bytes.toString('latin1', a, b),
      source: bytes.toString('utf8', b, c),
      data: bytes.toString('utf8', c, d),
    },
  };
}

/** Merges sorted slices through a tree of losers (log2 of the slices in comparisons a record), in batches. */
function* mergeSlices(slices: readonly Keyed[][]): Generator<Keyed[]> {
  const k = slices.length;
  if (k === 0) return;
  const at = new Int32Array(k);
  const head = (s: number): Keyed | undefined => (slices[s] as Keyed[])[at[s] as number];
  // Whether slice a's head goes first; an ended slice goes after everything.
  const first = (a: number, b: number): boolean => {
    const x = head(a);
    const y = head(b);
    if (x === undefined) return false;
    if (y === undefined) return true;
    return x.key < y.key || (x.key === y.key && a < b);
  };
  // Node i (1..k-1) holds the loser of the match played there; leaves are k..2k-1, slice
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
  let batch: Keyed[] = [];
  for (;;) {
    let winner = losers[0] as number;
    const item = head(winner);
    if (item === undefined) break; // the winner has ended, so every slice has
    batch.push(item);
    at[winner] = (at[winner] as number) + 1;
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
