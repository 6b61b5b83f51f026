import { setTimeout as sleep } from 'node:timers/promises';
import type { EchoBehaviour } from '@ballast/contracts/ballast/testing/v1/echo_pb.js';
import { EchoService } from '@ballast/contracts/ballast/testing/v1/echo_pb.js';
import { BallastError, type ErrorCode, errorCodes, invalidArgument } from '../errors.js';
import type { ServiceImpl } from '../types.js';

/**
 * The kit's test service: every call shape, with delays that honour cancellation and
 * failures on request, so the kit can be tested against a real server and client.
 */
async function behave(behaviour: EchoBehaviour | undefined, signal: AbortSignal) {
  if (behaviour?.delayMs) await sleep(behaviour.delayMs, undefined, { signal });
  const failure = behaviour?.failWith;
  if (!failure) return;
  if (failure === 'bug') throw new Error('a bug with a secret stack');
  if (failure === 'invalid_argument') throw invalidArgument('message', 'must not be empty');
  if (Object.hasOwn(errorCodes, failure))
    throw new BallastError(failure as ErrorCode, `failed as asked: ${failure}`);
  throw invalidArgument('behaviour.fail_with', `unknown failure "${failure}"`);
}

export const echoService: ServiceImpl<typeof EchoService> = {
  async echo(request, ctx) {
    await behave(request.behaviour, ctx.signal);
    return { message: request.message };
  },
  async *echoServerStream(request, ctx) {
    for (let index = 0; index < request.repeat; index++) {
      await behave(request.behaviour, ctx.signal);
      yield { message: request.message, index };
    }
  },
  async echoClientStream(requests) {
    const received: string[] = [];
    for await (const request of requests) received.push(request.message);
    return { message: received.join(' '), count: received.length };
  },
  async *echoBidiStream(requests) {
    let index = 0;
    for await (const request of requests) yield { message: request.message, index: index++ };
  },
};

export { EchoService };
