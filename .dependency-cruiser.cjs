/**
 * Dependency rules of STYLE §1: graphql -> {workflows, metering, decider} -> shared.
 * Run by `npm test` (`depcruise src --config .dependency-cruiser.cjs`).
 */
module.exports = {
  forbidden: [
    {
      name: 'shared-imports-nothing',
      comment: 'src/shared is the bottom layer: it imports nothing else in src/.',
      severity: 'error',
      from: { path: '^src/shared/' },
      to: { path: '^src/(?!shared/)' },
    },
    {
      name: 'decider-imports-no-domain',
      comment: 'src/decider imports only src/shared.',
      severity: 'error',
      from: { path: '^src/decider/' },
      to: { path: '^src/(?!shared/|decider/)' },
    },
    {
      name: 'metering-imports-shared-and-decider',
      comment: 'src/metering may import src/shared and src/decider, never workflows or graphql.',
      severity: 'error',
      from: { path: '^src/metering/' },
      to: { path: '^src/(workflows|graphql)/' },
    },
    {
      name: 'workflows-never-import-graphql',
      comment: 'src/workflows never imports src/graphql (the edge).',
      severity: 'error',
      from: { path: '^src/workflows/' },
      to: { path: '^src/graphql/' },
    },
    {
      name: 'workflow-sandbox',
      comment: 'Workflow code imports only @temporalio/workflow, types from ../activities and src/*/model/.',
      severity: 'error',
      from: { path: '^src/workflows/workflows/' },
      to: {
        path: '^src/(?!workflows/workflows/|workflows/activities/|[a-z]+/model/)',
      },
    },
    {
      name: 'workflow-sandbox-activities-types-only',
      comment: 'Workflows may reference activities only with `import type`.',
      severity: 'error',
      from: { path: '^src/workflows/workflows/' },
      to: { path: '^src/workflows/activities/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'import-folders-through-index',
      comment: 'Other folders import a folder through its index.ts, never a deep path (STYLE §1).',
      severity: 'error',
      from: { path: '^src/([a-z]+)/' },
      to: {
        path: '^src/([a-z]+)/.+',
        pathNot: ['^src/$1/', '^src/[a-z]+/index\\.ts$', '^src/[a-z]+/model/'],
      },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'src-never-imports-tests-or-infra',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^(test|infra|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
