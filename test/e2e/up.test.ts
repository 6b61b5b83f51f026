import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { envPrefix, isGrpcService, SERVICES } from '@ballast/config';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, freePort, TEST_REDIS_URL } from './support.js';

const require = createRequire(import.meta.url);
const cli = join(dirname(require.resolve('@ballast/sdk/package.json')), 'dist', 'cli.js');
const dataDir = mkdtempSync(join(tmpdir(), 'ballast-up-'));

afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

function childPids(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function portEnv(): Promise<Record<string, string>> {
  const env: Record<string, string> = {};
  for (const service of SERVICES) {
    const prefix = envPrefix(service);
    env[`${prefix}_HTTP_PORT`] = String(await freePort());
    if (isGrpcService(service)) {
      const port = await freePort();
      env[`${prefix}_GRPC_PORT`] = String(port);
      env[`${prefix}_ADDR`] = `127.0.0.1:${port}`;
    }
  }
  return env;
}

function runCli(args: string[], env: Record<string, string>) {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { ...process.env, BALLAST_DATABASE_URL: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (b: Buffer) => {
    output += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    output += b.toString();
  });
  return { child, output: () => output };
}

async function exitCode(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

describe('ballast up', () => {
  it('brings all six services up healthy, restarts a crashed one, and stops them all on Ctrl-C', async () => {
    const env = { ...(await portEnv()), BALLAST_REDIS_URL: TEST_REDIS_URL, BALLAST_DATA_DIR: dataDir };
    const up = runCli(['up', '--wait', '90'], env);
    try {
      await eventually(
        async () => (/all 6 services ready in [\d.]+s/.test(up.output()) ? true : undefined),
        'all six services ready',
        1_000,
      );
      for (const service of SERVICES) expect(up.output()).toMatch(new RegExp(`${service}\\s+ready in`));
      const pid = up.child.pid as number;
      const children = childPids(pid);
      expect(children).toHaveLength(6);

      // A crashed child is restarted, and says so.
      process.kill(children[0] as number, 'SIGKILL');
      await eventually(
        async () => (/exited \(SIGKILL\); restarting in 1s/.test(up.output()) ? true : undefined),
        'restart notice',
      );
      await eventually(async () => (childPids(pid).length === 6 ? true : undefined), 'six children again');
      const afterRestart = childPids(pid);

      up.child.kill('SIGINT');
      expect(await exitCode(up.child)).toBe(0);
      expect(up.output()).toContain('stopped.');
      for (const child of afterRestart) expect(alive(child)).toBe(false);
    } finally {
      if (up.child.exitCode === null) up.child.kill('SIGKILL');
    }
    // A fresh data dir means four PGlite initdb runs on two cores: allow minutes, not seconds.
  }, 180_000);

  it('says how to get Redis and exits non-zero when none answers', async () => {
    const up = runCli(['up'], { BALLAST_REDIS_URL: 'redis://127.0.0.1:1', BALLAST_DATA_DIR: dataDir });
    expect(await exitCode(up.child)).toBe(1);
    expect(up.output()).toContain('BALLAST_REDIS_URL=redis://127.0.0.1:1 does not answer');
    expect(up.output()).toContain('apt-get install redis-server');
  });

  it('explains an unknown command', async () => {
    const cliRun = runCli(['launch'], {});
    expect(await exitCode(cliRun.child)).toBe(2);
    expect(cliRun.output()).toContain('unknown command "launch"');
    expect(cliRun.output()).toContain('Usage: ballast <command>');
  });
});
