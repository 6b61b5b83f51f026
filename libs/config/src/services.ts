import { hostPort, port } from './fields.js';

export const SERVICES = ['ingest', 'feature', 'registry', 'inference', 'monitor', 'trainer'] as const;
export type ServiceName = (typeof SERVICES)[number];

/** The design's port table; `grpc: null` means the service serves no gRPC (trainer is a worker). */
export const DEFAULT_PORTS = {
  ingest: { grpc: 50051, http: 9451 },
  feature: { grpc: 50052, http: 9452 },
  registry: { grpc: 50053, http: 9453 },
  inference: { grpc: 50054, http: 9454 },
  monitor: { grpc: 50055, http: 9455 },
  trainer: { grpc: null, http: 9456 },
} as const satisfies Record<ServiceName, { grpc: number | null; http: number }>;

export type GrpcServiceName = {
  [S in ServiceName]: (typeof DEFAULT_PORTS)[S]['grpc'] extends number ? S : never;
}[ServiceName];

export const GRPC_SERVICES = SERVICES.filter(
  (s): s is GrpcServiceName => DEFAULT_PORTS[s].grpc !== null,
) as readonly GrpcServiceName[];

export function isGrpcService(service: ServiceName): service is GrpcServiceName {
  return DEFAULT_PORTS[service].grpc !== null;
}

type Prefix<S extends ServiceName> = `BALLAST_${Uppercase<S>}`;

/** `BALLAST_INGEST`, the prefix of a service's own variables. */
export function envPrefix<S extends ServiceName>(service: S): Prefix<S> {
  return `BALLAST_${service.toUpperCase()}` as Prefix<S>;
}

/** Where a service is found when BALLAST_<SERVICE>_ADDR is unset. */
export function defaultAddr(service: GrpcServiceName): string {
  return `127.0.0.1:${DEFAULT_PORTS[service].grpc}`;
}

const portField = (n: number) => port().default(n);
const addrField = (addr: string) => hostPort().default(addr);
type PortField = ReturnType<typeof portField>;
type AddrField = ReturnType<typeof addrField>;

export type AddrConfigShape<S extends GrpcServiceName> = { [K in `${Prefix<S>}_ADDR`]: AddrField };

export type ServiceConfigShape<S extends ServiceName> = {
  [K in `${Prefix<S>}_HTTP_PORT`]: PortField;
} & (S extends GrpcServiceName
  ? { [K in `${Prefix<S>}_GRPC_PORT`]: PortField } & AddrConfigShape<S>
  : unknown);

/**
 * `BALLAST_<S>_ADDR`: where other processes find service S (default 127.0.0.1:<its default port>).
 * The default follows the port table, not BALLAST_<S>_GRPC_PORT: whoever moves a port sets ADDR too.
 */
export function addrConfig<S extends GrpcServiceName>(service: S): AddrConfigShape<S> {
  return { [`${envPrefix(service)}_ADDR`]: addrField(defaultAddr(service)) } as AddrConfigShape<S>;
}

/** A service's own ports (`BALLAST_<S>_GRPC_PORT`, `BALLAST_<S>_HTTP_PORT`) and its ADDR. */
export function serviceConfig<S extends ServiceName>(service: S): ServiceConfigShape<S> {
  const prefix = envPrefix(service);
  const ports = DEFAULT_PORTS[service];
  const shape: Record<string, PortField | AddrField> = { [`${prefix}_HTTP_PORT`]: portField(ports.http) };
  if (ports.grpc !== null) {
    shape[`${prefix}_GRPC_PORT`] = portField(ports.grpc);
    shape[`${prefix}_ADDR`] = addrField(`127.0.0.1:${ports.grpc}`);
  }
  return shape as ServiceConfigShape<S>;
}
