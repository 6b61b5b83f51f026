import { randomUUID } from 'node:crypto';
import type { CommitOperationSchema } from '@ballast/contracts/ballast/ingest/v1/ingest_pb.js';
import { invalidArgument, notFound, toStatus } from '@ballast/grpc-kit';
import { activeTraceparent } from '@ballast/telemetry';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { type CommitResult, timestamp, type Versions } from './versions.js';

/** How long a finished operation stays readable. */
const KEEP_FINISHED_MS = 60 * 60 * 1000;

interface Operation {
  readonly id: string;
  readonly dataset: string;
  readonly startTime: Date;
  endTime?: Date;
  /** The record watermark it seals, once read: what decides whether a later call may join it. */
  watermark?: string;
  recordsDone: number;
  recordsTotal: number;
  result?: CommitResult;
  error?: unknown;
  /** The error as the status a caller sees, mapped once (an INTERNAL one is logged once). */
  failure?: { code: number; details: string };
  /** Settles (never rejects) when the commit has finished, either way. */
  finished: Promise<void>;
}

/**
 * Commits as operations of the service (AIP-151), not of the call that asked: a commit of a
 * large version takes longer than a client's default deadline, and the work must neither
 * be lost nor repeated when that caller goes away. Per dataset, commits run one at a time in
 * this process (the database decides between replicas); a call joins the newest one that
 * will seal everything acknowledged before the call, and otherwise queues a new one after it.
 */
export class CommitOperations {
  private readonly operations = new Map<string, Operation>();
  /** Per dataset: the newest operation not finished (running, or queued behind another). */
  private readonly newest = new Map<string, Operation>();

  constructor(
    private readonly versions: Versions,
    private readonly log?: { error(obj: object, msg?: string): void },
  ) {}

  /** Starts a commit of `name`, or joins the one that covers this call. */
  async start(name: string): Promise<Operation> {
    // Taken now, in the caller's context: the version records which call committed it.
    const traceparent = activeTraceparent();
    // Also what refuses an unknown dataset, before any operation exists for it.
    const watermark = await this.versions.watermark(name);
    const current = this.newest.get(name);
    // A queued commit has not read its watermark yet, so it will cover this call too. The
    // sequence is shared by every dataset: a record anywhere since makes this call queue a
    // new commit, which costs a scan but never misses a record.
    if (current && (current.watermark === undefined || current.watermark === watermark)) return current;
    const op: Operation = {
      id: randomUUID(),
      dataset: name,
      startTime: new Date(),
      recordsDone: 0,
      recordsTotal: 0,
      finished: Promise.resolve(),
    };
    op.finished = (current?.finished ?? Promise.resolve()).then(() => this.run(op, traceparent));
    this.operations.set(op.id, op);
    this.newest.set(name, op);
    return op;
  }

  private async run(op: Operation, traceparent: string): Promise<void> {
    try {
      op.result = await this.versions.commitNow(op.dataset, traceparent, {
        sealing: (watermark, total) => {
          op.watermark = watermark;
          op.recordsTotal = total;
          op.recordsDone = 0;
        },
        read: (records) => {
          op.recordsDone = records;
        },
      });
    } catch (err) {
      op.error = err;
      op.failure = toStatus(err, this.log, 'CommitVersion');
    } finally {
      op.endTime = new Date();
      if (this.newest.get(op.dataset) === op) this.newest.delete(op.dataset);
      setTimeout(() => this.operations.delete(op.id), KEEP_FINISHED_MS).unref();
    }
  }

  /** The finished operation's result, or its error thrown (for callers that wait). */
  async result(op: Operation): Promise<CommitResult> {
    await op.finished;
    if (op.error !== undefined) throw op.error;
    return op.result as CommitResult;
  }

  get(id: string): Operation {
    if (id === '') throw invalidArgument('id', 'is required');
    const op = this.operations.get(id);
    if (!op)
      throw notFound(
        `id: commit operation ${JSON.stringify(id)} not found (finished over an hour ago, or before a restart)`,
      );
    return op;
  }

  /** Waits until the operation is done, `timeoutMs` passes or `signal` aborts. */
  async wait(id: string, timeoutMs: number, signal: AbortSignal): Promise<Operation> {
    const op = this.get(id);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    await Promise.race([
      op.finished,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        onAbort = resolve;
        signal.addEventListener('abort', onAbort, { once: true });
      }),
    ]);
    clearTimeout(timer);
    if (onAbort) signal.removeEventListener('abort', onAbort);
    return op;
  }

  describe(op: Operation): MessageInitShape<typeof CommitOperationSchema> {
    const failure = op.failure;
    return {
      id: op.id,
      dataset: op.dataset,
      done: op.endTime !== undefined,
      recordsDone: BigInt(op.recordsDone),
      recordsTotal: BigInt(op.recordsTotal),
      ...(op.result ? { version: op.result.version, created: op.result.created } : {}),
      ...(failure ? { errorCode: failure.code, errorMessage: failure.details } : {}),
      startTime: timestamp(op.startTime),
      ...(op.endTime ? { endTime: timestamp(op.endTime) } : {}),
    };
  }
}
