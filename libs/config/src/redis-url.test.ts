import { describe, expect, it } from 'vitest';
import { commonConfig } from './common.js';
import { loadConfig } from './load.js';
import { parseRedisUrl } from './redis-url.js';

describe('parseRedisUrl', () => {
  it('keeps a standalone URL as written', () => {
    expect(parseRedisUrl('rediss://:pw@redis.internal:6380/2')).toEqual({
      kind: 'standalone',
      url: 'rediss://:pw@redis.internal:6380/2',
      waitReplicas: 0,
    });
  });

  it('takes waitReplicas in every form, and leaves it out of the URL ioredis reads', () => {
    expect(parseRedisUrl('redis://h:6379/1?family=6&waitReplicas=1')).toEqual({
      kind: 'standalone',
      url: 'redis://h:6379/1?family=6',
      waitReplicas: 1,
    });
    expect(parseRedisUrl('redis+cluster://h1:7000?waitReplicas=2')).toMatchObject({ waitReplicas: 2 });
    expect(parseRedisUrl('redis+sentinel://s1/m?waitReplicas=1')).toMatchObject({ waitReplicas: 1 });
    expect(parseRedisUrl('redis+cluster://h1:7000?waitReplicas=all')).toBeUndefined();
  });

  it('reads a cluster: seed nodes, default port, IPv6, credentials, TLS', () => {
    expect(parseRedisUrl('rediss+cluster://app:p%40ss@10.0.0.1:7000,node-b,[::1]:7002')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: 'node-b', port: 6379 },
        { host: '::1', port: 7002 },
      ],
      tls: true,
      waitReplicas: 0,
      username: 'app',
      password: 'p@ss',
    });
  });

  it('reads sentinels, the master name, a database and the sentinels own password', () => {
    expect(parseRedisUrl('redis+sentinel://:pw@s1:26380,s2/mymaster/3?sentinelPassword=spw')).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 's1', port: 26_380 },
        { host: 's2', port: 26_379 },
      ],
      masterName: 'mymaster',
      db: 3,
      sentinelPassword: 'spw',
      waitReplicas: 0,
      tls: false,
      password: 'pw',
    });
  });

  it.each([
    ['http://localhost:6379', 'not Redis'],
    ['redis+cluster://h1:7000/0', 'a cluster has no databases'],
    ['redis+cluster://h1:7000,,h2', 'an empty node'],
    ['redis+cluster://h1:99999', 'a port out of range'],
    ['redis+sentinel://s1:26379', 'no master name'],
    ['redis+sentinel://s1:26379/m/x', 'a database that is not a number'],
    ['redis+sentinel://s1:26379/m?timeout=1', 'an unknown parameter'],
    ['redis+replica://h1:6379', 'an unknown form'],
  ])('refuses %s (%s)', (raw) => {
    expect(parseRedisUrl(raw)).toBeUndefined();
  });

  it('is what BALLAST_REDIS_URL accepts, kept as the string given', () => {
    const url = 'redis+cluster://127.0.0.1:7000,127.0.0.1:7001';
    expect(loadConfig(commonConfig, { BALLAST_REDIS_URL: url }).BALLAST_REDIS_URL).toBe(url);
    expect(() => loadConfig(commonConfig, { BALLAST_REDIS_URL: 'redis+cluster://' })).toThrow(
      /BALLAST_REDIS_URL: expected a Redis URL/,
    );
  });
});
