/** Requests of one stream in flight at once; reading pauses beyond it. */
const MAX_STREAM_IN_FLIGHT = 1024;

/**
 * The answers to a stream of requests: they run concurrently (so they batch with each other)
 * and each answer goes out as it finishes. `answer` handles one request; a request it fails is
 * answered with `failure(request, error)`, and the stream goes on. An error reading the
 * stream itself ends it, after the answers to what was read.
 */
export async function* answerConcurrently<Request, Answer>(
  requests: AsyncIterable<Request>,
  answer: (request: Request) => Promise<Answer>,
  failure: (request: Request, error: unknown) => Answer,
): AsyncGenerator<Answer> {
  const ready: Answer[] = [];
  let inFlight = 0;
  let wake: (() => void) | undefined;
  let done = false;
  let readError: unknown;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  const reader = (async () => {
    try {
      for await (const request of requests) {
        while (inFlight >= MAX_STREAM_IN_FLIGHT) await new Promise<void>((r) => setTimeout(r, 1));
        inFlight++;
        let pending: Promise<Answer>;
        try {
          pending = answer(request);
        } catch (error) {
          pending = Promise.reject(error);
        }
        pending
          .then(
            (value) => ready.push(value),
            (error: unknown) => ready.push(failure(request, error)),
          )
          .finally(() => {
            inFlight--;
            notify();
          });
      }
    } catch (error) {
      readError = error;
    } finally {
      done = true;
      notify();
    }
  })();
  while (true) {
    while (ready.length > 0) yield ready.shift() as Answer;
    if (done && inFlight === 0) break;
    await new Promise<void>((resolve) => {
      wake = resolve;
      if (ready.length > 0 || (done && inFlight === 0)) resolve();
    });
  }
  await reader;
  if (readError) throw readError;
}
