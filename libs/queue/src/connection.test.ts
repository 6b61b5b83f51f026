import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { closeAll } from './close.js';
import { connectRedis, DEFAULT_REDIS_URL, pingRedis, redisUrl } from './connection.js';

describe('connectRedis', () => {
  const connection = connectRedis(DEFAULT_REDIS_URL);
  afterAll(() => closeAll([connection]));

  it('connects to BALLAST_REDIS_URL or the default, ready for BullMQ workers', async () => {
    expect(redisUrl()).toBe(process.env.BALLAST_REDIS_URL || DEFAULT_REDIS_URL);
    expect(connection).toBeInstanceOf(Redis);
    expect((connection as Redis).options.maxRetriesPerRequest).toBeNull();
    expect(await connection.ping()).toBe('PONG');
  });

  it('refuses a URL that names no Redis deployment, saying which forms it takes', () => {
    expect(() => connectRedis('redis+cluster://')).toThrow(/not a Redis URL \(expected redis:\/\/host:port/);
  });
});

describe('pingRedis', () => {
  it('is true for the live Redis', async () => {
    expect(await pingRedis()).toBe(true);
  });

  it('is false for a closed port', async () => {
    expect(await pingRedis('redis://127.0.0.1:1', 2000)).toBe(false);
  });

  it('is false for a URL that is not Redis at all', async () => {
    expect(await pingRedis('not a url', 500)).toBe(false);
  });

  it('is false for a cluster none of whose nodes answers', async () => {
    expect(await pingRedis('redis+cluster://127.0.0.1:1,127.0.0.1:2', 2000)).toBe(false);
  });

  it('gives up on a server that never answers, and closes its connection', async () => {
    let accepted = 0;
    const silent = createServer((socket) => {
      accepted += 1;
      // Read (and ignore) what the client sends, or the client's FIN would go unnoticed.
      socket.resume();
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const address = silent.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');

    expect(await pingRedis(`redis://127.0.0.1:${address.port}`, 200)).toBe(false);

    // server.close() resolves only once every accepted connection has ended, so this would
    // hang (and the hook time out) if pingRedis had left its socket open.
    await new Promise<void>((resolve, reject) => silent.close((err) => (err ? reject(err) : resolve())));
    expect(accepted).toBe(1);
  });
});
