import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { closeAll, connectRedis, createQueue, QueueNames } from '@ballast/queue';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMANDS, commandHelp, isTracedRun } from './cli-commands.js';
import { runCli } from './cli-run.js';
import { progress, table } from './output.js';

// The CLI in-process through runCli (what the entry runs), against real Redis. The built
// binary, its exit codes, its traces and the commands that need services are covered by
// test/e2e/cli-trace.test.ts.
const REDIS_URL = process.env.BALLAST_TEST_CLI_REDIS_URL ?? 'redis://127.0.0.1:6379/10';

async function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, {
    env: { BALLAST_REDIS_URL: REDIS_URL, ...env },
    print: (line) => out.push(line),
    error: (line) => err.push(line),
  });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

/** Every service's port pointed at a port nothing listens on: the suite is down. */
const SUITE_DOWN: NodeJS.ProcessEnv = Object.fromEntries(
  ['INGEST', 'FEATURE', 'REGISTRY', 'INFERENCE', 'MONITOR']
    .map((s) => [`BALLAST_${s}_GRPC_PORT`, '1'])
    .concat([['BALLAST_TRAINER_HTTP_PORT', '1']]),
);

/** The same for the clients commands use (BALLAST_<SERVICE>_ADDR). */
const SUITE_DOWN_ADDRS: NodeJS.ProcessEnv = Object.fromEntries(
  ['INGEST', 'FEATURE', 'REGISTRY', 'INFERENCE', 'MONITOR'].map((s) => [`BALLAST_${s}_ADDR`, '127.0.0.1:1']),
);

describe('ballast --help', () => {
  const names = Object.keys(COMMANDS);

  it.each(names)('%s --help prints its usage and options, and exits 0', async (name) => {
    const { code, stdout } = await run([name, '--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^Usage: ballast ${name}\\b`));
    expect(stdout).toContain(COMMANDS[name]?.summary);
    expect(stdout).toBe(commandHelp(name));
    // `ballast help <command>` and -h say the same.
    expect((await run(['help', name])).stdout).toBe(stdout);
    expect((await run([name, '-h'])).stdout).toBe(stdout);
  });

  it('lists every command in the overview', async () => {
    const { code, stdout } = await run(['help']);
    expect(code).toBe(0);
    for (const name of names) expect(stdout).toMatch(new RegExp(`^  ${name}\\s`, 'm'));
  });

  it("matches the README's table of commands, one row each, in the same order", () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## The `ballast` CLI'));
    const rows = [...section.matchAll(/^\| `([a-z]+)` \| /gm)].map((m) => m[1]);
    expect(rows).toEqual(names);
  });

  it('refuses an unknown command with exit code 2', async () => {
    const { code, stderr } = await run(['frobnicate']);
    expect(code).toBe(2);
    expect(stderr).toContain('unknown command "frobnicate"');
    await expect(run(['help', 'frobnicate'])).rejects.toThrow('no command "frobnicate"');
  });

  it.each([
    [['versions'], /^versions: `ballast versions list <dataset>`/],
    [['versions', 'diff', 'weather', 'v1'], /^versions: /],
    [['features', 'stats'], /^features stats: name the view/],
    [['features', 'frob'], /^features: list, show <view>, stats <view> or apply <view.json>$/],
    [['models', 'create'], /^models create: `ballast models create <name>/],
    [
      ['models', 'create', 'm', '--task', 'ranking'],
      /^--task: expected regression or classification, got "ranking"$/,
    ],
  ])('%j is refused with its usage before any call', async (argv, message) => {
    await expect(run(argv, SUITE_DOWN_ADDRS)).rejects.toThrow(message);
  });

  it('traces commands that run, not help, up or trace', () => {
    expect(isTracedRun(['models'])).toBe(true);
    expect(isTracedRun(['predict', 'm', '--features', '{}'])).toBe(true);
    expect(isTracedRun(['models', '--help'])).toBe(false);
    expect(isTracedRun(['help', 'models'])).toBe(false);
    expect(isTracedRun(['up'])).toBe(false);
    expect(isTracedRun(['nosuch'])).toBe(false);
  });
});

describe('ballast --json', () => {
  const model = `cli-json-${randomUUID().slice(0, 8)}`;
  const redis = connectRedis(REDIS_URL);
  const queue = createQueue(QueueNames.trainingRun, { connection: redis });

  afterAll(async () => {
    await queue.removeJobScheduler(`retrain-${model}`);
    const jobs = await queue.getJobs(['waiting', 'delayed', 'prioritized']);
    await Promise.all(jobs.filter((j) => j.data.model === model).map((j) => j.remove()));
    await closeAll([queue, redis]);
  });

  it('jobs --json is a JSON array of the jobs', async () => {
    await queue.add('train', { model, reason: 'cli test' }, { jobId: `${model}-job` });
    const { code, stdout } = await run(['jobs', '--json', '--limit', '100']);
    expect(code).toBe(0);
    const jobs = JSON.parse(stdout) as { id: string; model: string; state: string }[];
    expect(jobs).toContainEqual(expect.objectContaining({ id: `${model}-job`, model, state: 'waiting' }));
  });

  it('schedule list --json is a JSON array of the schedules', async () => {
    await queue.upsertJobScheduler(
      `retrain-${model}`,
      { pattern: '0 3 * * *' },
      { name: 'train', data: { model, reason: 'schedule' } },
    );
    const { code, stdout } = await run(['schedule', 'list', '--json']);
    expect(code).toBe(0);
    const schedules = JSON.parse(stdout) as { id: string; cron: string }[];
    expect(schedules).toContainEqual(expect.objectContaining({ id: `retrain-${model}`, cron: '0 3 * * *' }));
  });

  it('status --json says which services are down, and exits 1', async () => {
    const { code, stdout } = await run(['status', '--json'], SUITE_DOWN);
    expect(code).toBe(1);
    const status = JSON.parse(stdout) as { ready: boolean; services: { name: string; readiness: string }[] };
    expect(status.ready).toBe(false);
    expect(status.services.map((s) => `${s.name} ${s.readiness}`)).toEqual([
      'ingest down',
      'feature down',
      'registry down',
      'inference down',
      'monitor down',
      'trainer down',
    ]);
  });

  it('status says how a service failed its check: connection refused is down', async () => {
    const { code, stdout } = await run(['status'], SUITE_DOWN);
    expect(code).toBe(1);
    expect(stdout).toMatch(/^ingest\s+down\s+127\.0\.0\.1:1\s+connection refused \(down\)$/m);
  });

  it('jobs names what it could not read when the feature service is down, and still lists the jobs', async () => {
    const { code, stdout } = await run(['jobs', '--limit', '100'], SUITE_DOWN_ADDRS);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^${model}-job\\s+waiting`, 'm'));
    expect(stdout).toMatch(/^failed materializations unknown: feature service: UNAVAILABLE: /m);
  });

  it('jobs lists in aligned columns', async () => {
    const { stdout } = await run(['jobs', '--limit', '100']);
    const lines = stdout.split('\n');
    const header = lines[0] ?? '';
    expect(header).toMatch(/^JOB +STATE +MODEL +ADDED +DETAIL$/);
    const row = lines.find((l) => l.startsWith(`${model}-job`)) ?? '';
    // Each column starts where its header does.
    expect(row.indexOf(' waiting ') + 1).toBe(header.indexOf('STATE'));
    expect(row.indexOf(` ${model} `) + 1).toBe(header.indexOf('MODEL'));
  });
});

describe('output', () => {
  it('pads every column but the last to its widest cell', () => {
    expect(
      table([
        ['A', 'BB', 'C'],
        ['long cell', 'x', 'last column is not padded'],
      ]),
    ).toEqual(['A          BB  C', 'long cell  x   last column is not padded']);
  });

  it('draws progress as plain lines off a terminal, and redraws one line on a terminal', () => {
    const printed: string[] = [];
    const plain = progress((line) => printed.push(line), { isTTY: false, write: () => true });
    for (const line of ['[#...] 25%', '[#...] 25%', '[##..] 50%']) plain.update(line);
    plain.done();
    expect(printed).toEqual(['[#...] 25%', '[##..] 50%']);

    const written: string[] = [];
    const tty = progress(() => {}, { isTTY: true, write: (text: string) => written.push(text) });
    tty.update('[#...] 25%');
    tty.update('[##..] 50%');
    tty.done();
    expect(written).toEqual(['\r\x1b[2K[#...] 25%', '\r\x1b[2K[##..] 50%', '\n']);
  });
});
