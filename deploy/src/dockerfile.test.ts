import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { dockerfileProblems } from './checks.js';
import { baseImage, dockerfileLintProblems, parseDockerfile } from './dockerfile.js';
import { deployPath } from './paths.js';

const text = readFileSync(deployPath('Dockerfile'), 'utf8');
const dockerfile = parseDockerfile(text);

describe('deploy/Dockerfile', () => {
  it('passes the dockerfile-utils linter without a diagnostic', () => {
    expect(dockerfileLintProblems(text)).toEqual([]);
  });

  it('the linter reports broken instructions', () => {
    const broken = text
      .replace('EXPOSE 50051 9451', 'EXPOSE grpc')
      .replace('COPY --from=build /app/package.json', 'COPY --frm=build /app/package.json');
    expect(dockerfileLintProblems(broken)).toEqual([
      expect.stringMatching(/^line \d+: Unknown flag: frm$/),
      expect.stringMatching(/^line \d+: Invalid containerPort: grpc$/),
    ]);
  });

  it('has a target per service and GPU targets for inference and trainer, non-root, no HEALTHCHECK', () => {
    expect(dockerfileProblems(dockerfile)).toEqual([]);
  });

  it('builds the GPU targets on CUDA with cuDNN and the CPU ones on node:20-slim', () => {
    const stage = (name: string) => dockerfile.stages.find((s) => s.name === name);
    const gpu = stage('inference-gpu');
    const cpu = stage('inference');
    expect(gpu && baseImage(gpu)).toMatch(/^nvidia\/cuda:11\.8\.\d+-cudnn8-runtime-ubuntu22\.04$/);
    expect(cpu && baseImage(cpu)).toBe('node:20-bookworm-slim');
  });

  it('catches a HEALTHCHECK, a root user, a missing target and a COPY from no stage', () => {
    const broken = text
      .replace('FROM runtime AS monitor', 'FROM runtime AS monitr')
      .replace(
        'USER node\nENTRYPOINT ["node", "--import", "@ballast/telemetry/register"]\n\n# ----',
        'USER root\nENTRYPOINT ["node", "--import", "@ballast/telemetry/register"]\n\n# ----',
      )
      .replace('COPY --from=deps-ingest /app/ ./', 'COPY --from=deps-ingst /app/ ./\nHEALTHCHECK CMD true');
    const problems = dockerfileProblems(parseDockerfile(broken));
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/COPY --from=deps-ingst: no earlier stage/),
        expect.stringMatching(/HEALTHCHECK/),
        'no target monitor',
        'ingest: runs as root (USER root)',
      ]),
    );
  });
});
