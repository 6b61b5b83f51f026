import { createServer } from 'node:net';

// Ports for service processes that tests and benchmarks start. Asking the kernel for port 0
// hands out a port from the ephemeral range (32768-60999 on Linux), the same range it uses
// for the local end of every outgoing connection: between the probe closing and the child
// process binding, a connection to Redis or Postgres may take that port, and the child
// dies with EADDRINUSE (CI saw it). Ports below the ephemeral range are never handed out
// that way, so a probed-free one stays free unless another test picks the same number.
const LOW = 20_000;
const HIGH = 32_000;
const given = new Set<number>();

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

/**
 * A loopback port nobody listens on, not given before in this process, from [low, high):
 * by default below the ephemeral range.
 */
export async function freePort(low = LOW, high = HIGH): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (given.has(port)) continue;
    if (await bindable(port)) {
      given.add(port);
      return port;
    }
  }
  throw new Error(`no free loopback port in ${low}-${high - 1} after 200 tries`);
}
