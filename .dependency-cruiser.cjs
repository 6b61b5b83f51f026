// Module boundaries, checked by `npm run check:boundaries` (part of `npm run lint`).
//
// The rules come from the Nx tags in each workspace package.json ("nx": {"tags": [...]}),
// so a new package is covered by tagging it: a lib depends only on libs; a service only on
// libs (it meets other services through proto/ and libs/queue, and its tests start them as
// processes through @ballast/grpc-kit/testing); the e2e/reliability tests and deploy/ only
// on libs. Import circles are refused everywhere, type-only imports included.
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const ALLOWED = {
  'type:lib': ['type:lib'],
  'type:service': ['type:lib'],
  'type:test': ['type:lib'],
  'type:deploy': ['type:lib'],
};

const rootPackage = JSON.parse(readFileSync(join(__dirname, 'package.json'), 'utf8'));
const projects = [];
for (const pattern of rootPackage.workspaces) {
  const parent = pattern.endsWith('/*') ? pattern.slice(0, -2) : undefined;
  const dirs = parent
    ? require('node:fs')
        .readdirSync(join(__dirname, parent), { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => `${parent}/${d.name}`)
    : [pattern];
  for (const dir of dirs) {
    let pkg;
    try {
      pkg = JSON.parse(readFileSync(join(__dirname, dir, 'package.json'), 'utf8'));
    } catch {
      continue;
    }
    const type = (pkg.nx?.tags ?? []).find((t) => t.startsWith('type:'));
    if (!type || !ALLOWED[type])
      throw new Error(`${dir}/package.json: nx.tags needs one of ${Object.keys(ALLOWED)}`);
    projects.push({ dir, name: pkg.name, type });
  }
}

const escapeRegExp = (s) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
// A project's files, whichever way an import reaches them: its folder (anywhere in the
// resolved path: node_modules may be a link to another checkout's), or its package name
// when the import cannot be resolved (before a build: packages export their dist/).
const under = (p) => [`(^|/)${escapeRegExp(p.dir)}/`, `^${escapeRegExp(p.name)}(/|$)`];

const forbidden = [
  {
    name: 'no-circular',
    comment: 'An import circle (type-only imports count): cut it with a module both sides import.',
    severity: 'error',
    from: {},
    to: { circular: true },
  },
];
for (const from of projects) {
  const others = projects.filter((to) => to.dir !== from.dir && !ALLOWED[from.type].includes(to.type));
  if (others.length === 0) continue;
  forbidden.push({
    name: `${from.type}-boundary`,
    comment: `${from.dir} (${from.type}) may depend only on ${ALLOWED[from.type].join(', ')} packages`,
    severity: 'error',
    from: { path: `^${escapeRegExp(from.dir)}/` },
    to: { path: others.flatMap(under) },
  });
}

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: ['node_modules', '/dist/'] },
    exclude: { path: ['(^|/)node_modules/', '\\.d\\.ts$'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.base.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'node', 'default'],
      extensions: ['.ts', '.js', '.mjs', '.cjs', '.json'],
    },
  },
};
