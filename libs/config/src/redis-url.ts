/**
 * The three Redis deployments BALLAST_REDIS_URL can name:
 *
 *   redis://[user:password@]host:port[/db]                       one server (rediss:// for TLS)
 *   redis+cluster://[user:password@]h1:p1,h2:p2,...              Redis Cluster: any reachable
 *                                                                nodes; the rest are discovered
 *   redis+sentinel://[user:password@]h1:p1,h2:p2/<master>[/db]   Sentinel: the sentinels and
 *                                                                the master name they watch
 *
 * `rediss+cluster://` and `rediss+sentinel://` connect with TLS. The credentials are the Redis
 * servers'; sentinels that want their own password take `?sentinelPassword=...`. A cluster has
 * no databases, so it takes no `/db`. Ports default to 6379 (servers) and 26379 (sentinels).
 *
 * Every form takes `?waitReplicas=N`: a job is acknowledged to its producer only once N
 * replicas hold it (Redis WAIT), so a master that dies right after cannot take it along.
 * Redis replicates asynchronously; without it (the default, 0), a failover can lose the
 * last writes the old master had not yet passed on.
 */
export interface RedisAddress {
  host: string;
  port: number;
}

interface Credentials {
  tls: boolean;
  username?: string | undefined;
  password?: string | undefined;
}

interface Durability {
  /** Replicas that must confirm a queued job before it is acknowledged (Redis WAIT); 0: none. */
  waitReplicas: number;
}

export type RedisTarget =
  | ({ kind: 'standalone'; url: string } & Durability)
  | ({ kind: 'cluster'; nodes: RedisAddress[] } & Credentials & Durability)
  | ({
      kind: 'sentinel';
      sentinels: RedisAddress[];
      masterName: string;
      db: number;
      sentinelPassword?: string | undefined;
    } & Credentials &
      Durability);

export const REDIS_URL_FORMS =
  'redis://host:port[/db], redis+cluster://host:port,host:port,... or redis+sentinel://host:port,.../<master name>[/db] (rediss for TLS)';

const MULTI_HOST = /^(rediss?)\+(cluster|sentinel):\/\/(?:([^@/]*)@)?([^/?#]+)(\/[^?#]*)?(?:\?([^#]*))?$/;

/** What a BALLAST_REDIS_URL names, or undefined when it is none of the forms above. */
export function parseRedisUrl(raw: string): RedisTarget | undefined {
  const multi = MULTI_HOST.exec(raw);
  if (!multi) {
    if (!URL.canParse(raw)) return undefined;
    const url = new URL(raw);
    if ((url.protocol !== 'redis:' && url.protocol !== 'rediss:') || !url.hostname) return undefined;
    const waitReplicas = takeWaitReplicas(url.searchParams);
    if (waitReplicas === undefined) return undefined;
    if (!url.searchParams.has('waitReplicas')) return { kind: 'standalone', url: raw, waitReplicas };
    // ioredis reads the rest of the query as its own options; this one is Ballast's.
    url.searchParams.delete('waitReplicas');
    return { kind: 'standalone', url: url.toString(), waitReplicas };
  }
  const [, scheme, kind, userinfo, hostList = '', path = '', query = ''] = multi;
  const addresses = parseAddresses(hostList, kind === 'sentinel' ? 26_379 : 6379);
  if (!addresses) return undefined;
  const credentials: Credentials = { tls: scheme === 'rediss', ...parseUserinfo(userinfo) };
  const params = new URLSearchParams(query);
  const waitReplicas = takeWaitReplicas(params);
  if (waitReplicas === undefined) return undefined;
  params.delete('waitReplicas');
  const segments = path.split('/').filter((s) => s.length > 0);
  if (kind === 'cluster') {
    if (segments.length > 0 || params.size > 0) return undefined;
    return { kind: 'cluster', nodes: addresses, waitReplicas, ...credentials };
  }
  const [masterName, dbText = '0', ...rest] = segments.map(decodeURIComponent);
  if (!masterName || rest.length > 0 || !/^\d+$/.test(dbText)) return undefined;
  for (const name of params.keys()) if (name !== 'sentinelPassword') return undefined;
  return {
    kind: 'sentinel',
    sentinels: addresses,
    masterName,
    db: Number(dbText),
    sentinelPassword: params.get('sentinelPassword') ?? undefined,
    waitReplicas,
    ...credentials,
  };
}

/** `waitReplicas` from a query: 0 when absent, undefined when it is not a small whole number. */
function takeWaitReplicas(params: URLSearchParams): number | undefined {
  const text = params.get('waitReplicas');
  if (text === null) return 0;
  return /^\d{1,2}$/.test(text) ? Number(text) : undefined;
}

function parseUserinfo(userinfo: string | undefined): Pick<Credentials, 'username' | 'password'> {
  if (userinfo === undefined) return {};
  const colon = userinfo.indexOf(':');
  const user = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
  const password = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1));
  return { ...(user ? { username: user } : {}), ...(password ? { password } : {}) };
}

/** `h1:p1,h2,[::1]:p3`; undefined if any entry is not a host with an optional port. */
function parseAddresses(list: string, defaultPort: number): RedisAddress[] | undefined {
  const addresses: RedisAddress[] = [];
  for (const entry of list.split(',')) {
    const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+))(?::(\d{1,5}))?$/.exec(entry);
    if (!match) return undefined;
    const port = match[3] === undefined ? defaultPort : Number(match[3]);
    if (port < 1 || port > 65_535) return undefined;
    addresses.push({ host: (match[1] ?? match[2]) as string, port });
  }
  return addresses;
}
