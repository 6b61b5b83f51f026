const immediate = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Lets the event loop run timers and I/O (health checks, other RPCs) before going on. One
 * setImmediate is not enough when called from a promise that I/O settled (a query's rows
 * arriving): it runs in the same turn's check phase, so the work before and after it is one
 * block to the rest of the service. The second crosses into the next turn (README, Feature,
 * has the materialize bench's loop delays before and after).
 */
export async function yieldToLoop(): Promise<void> {
  await immediate();
  await immediate();
}
