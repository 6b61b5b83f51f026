import { EchoService } from '@ballast/contracts/ballast/testing/v1/echo_pb.js';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from '../client.js';
import {
  packageEntry,
  type ServiceProcess,
  ServingStatus,
  startServiceProcess,
  waitHealth,
} from './process.js';

// The kit's own echo server (dist/testing/echo-main.js) stands in for a service: it listens on
// ECHO_PORT and turns SERVING at once.
const echo = {
  package: '@ballast/grpc-kit',
  entry: 'dist/testing/echo-main.js',
  portEnv: { grpc: 'ECHO_PORT', http: 'ECHO_HTTP_PORT' },
  telemetry: false,
} as const;

const started: ServiceProcess[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((p) => p.kill()));
});

describe('startServiceProcess', () => {
  it('resolves the entry point through the package, not its code', () => {
    expect(packageEntry('@ballast/grpc-kit', 'dist/testing/echo-main.js')).toMatch(
      /libs\/grpc-kit\/dist\/testing\/echo-main\.js$/,
    );
  });

  it('returns once the named service is SERVING, and stops it with SIGTERM (exit 0)', async () => {
    const proc = await startServiceProcess({ ...echo, ready: EchoService.typeName });
    started.push(proc);
    expect(proc.alive()).toBe(true);
    const client = createClient(EchoService, { address: proc.address, deadlineMs: 5_000 });
    expect((await client.echo({ message: 'hi' })).message).toBe('hi');
    client.close();
    expect(await proc.stop()).toBe(0);
    expect(proc.alive()).toBe(false);
    expect(proc.output()).toContain('shutdown hooks ran');
  });

  it('fails fast, with the output, when the process exits before it is ready', async () => {
    const at = Date.now();
    await expect(
      startServiceProcess({
        ...echo,
        ready: EchoService.typeName,
        env: { ECHO_GRACE_MS: 'x' },
        entry: 'missing.js',
      }),
    ).rejects.toThrow(/exited before .*Cannot find module/s);
    expect(Date.now() - at).toBeLessThan(30_000);
  });

  it('times out with the last status it saw', async () => {
    const proc = await startServiceProcess({ ...echo, ready: false });
    started.push(proc);
    await expect(proc.ready('no.such.Service', 1_000)).rejects.toThrow(
      /timed out .* no\.such\.Service SERVING .*last: /,
    );
  });

  it('restarts on the same ports after a kill', async () => {
    const proc = await startServiceProcess({ ...echo, ready: '' });
    started.push(proc);
    const first = proc.child.pid;
    expect(await proc.kill()).toBeNull();
    expect(proc.alive()).toBe(false);
    await proc.restart();
    expect(proc.child.pid).not.toBe(first);
    expect(
      await waitHealth(proc, EchoService.typeName, { status: ServingStatus.SERVING }),
    ).toBeGreaterThanOrEqual(0);
  });
});
