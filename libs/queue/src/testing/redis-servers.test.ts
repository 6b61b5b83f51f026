import { afterAll, describe, expect, it } from 'vitest';
import {
  infoFields,
  killRedisServer,
  makeDir,
  PortTakenError,
  redisCli,
  removeDir,
  startRedisServer,
  startRedisServerOnFreePort,
} from './redis-servers.js';

// The test servers' start-up: another process (another test file's cluster, another run) may
// bind the port drawn for one between the check that it is free and redis-server's bind.

describe('startRedisServer', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map(removeDir));
  });

  it('does not take another server already on its port for its own', async () => {
    const [mine, theirs] = await Promise.all([makeDir('servers-test'), makeDir('servers-test')]);
    dirs.push(mine, theirs);
    const other = await startRedisServerOnFreePort(theirs, () => []);
    try {
      // That server answers PING on the port; the one started here could not bind it.
      await expect(startRedisServer(other.port, mine, [])).rejects.toBeInstanceOf(PortTakenError);
      const info = infoFields(await redisCli(other.port, 'info', 'server'));
      expect(info.get('process_id')).toBe(String(other.child.pid));
    } finally {
      await killRedisServer(other);
    }
  });

  it('resolves once the server it started answers on the port drawn', async () => {
    const dir = await makeDir('servers-test');
    dirs.push(dir);
    const server = await startRedisServerOnFreePort(dir, () => []);
    try {
      expect(server.port).toBeGreaterThanOrEqual(11_000);
      expect(server.port).toBeLessThan(20_000);
      const info = infoFields(await redisCli(server.port, 'info', 'server'));
      expect(info.get('process_id')).toBe(String(server.child.pid));
    } finally {
      await killRedisServer(server);
    }
  });
});
