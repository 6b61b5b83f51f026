import { RpcError } from '@ballast/grpc-kit';
import { status } from '@grpc/grpc-js';

/** A call that failed because what it named does not exist. */
export const isNotFound = (err: unknown): err is RpcError =>
  err instanceof RpcError && err.code === status.NOT_FOUND;

/** A call's answer, or undefined when it failed NOT_FOUND (any other failure is thrown). */
export async function ifFound<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/**
 * A call about one named thing: when it fails NOT_FOUND, an error naming the thing and where to
 * find the ones that exist (one line, for the CLI's `ballast: ...` and exit code 1).
 */
export async function about<T>(call: Promise<T>, what: string, hint: string): Promise<T> {
  try {
    return await call;
  } catch (err) {
    if (isNotFound(err)) throw new Error(`unknown ${what} (NOT_FOUND: ${err.details}); ${hint}`);
    throw err;
  }
}
