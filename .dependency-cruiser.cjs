/**
 * Dependency rules (STYLE §1, drawn in docs/architecture.md):
 *
 *   graphql  -> workflows, jobs, billing, metering, decider, shared   (the edge)
 *   workflows -> jobs, billing, metering, decider, shared
 *   jobs     -> decider, shared
 *   billing  -> metering, decider, shared
 *   metering -> decider, shared
 *   decider  -> shared
 *   shared   -> nothing
 *   admin    -> workflows, jobs, billing, metering, decider, shared   (the admin API, below the edge; graphql wires it)
 *   gateway  -> graphql, decider, shared               (tollgate in front of an upstream)
 *   graphql/surface.ts -> gateway                       (the API process serves the demo or, in gateway mode, an upstream)
 *   package  -> graphql, gateway, decider, workflows, shared   (the published entries; never the demo)
 *   cli      -> gateway, shared, graphql/server.ts      (the `tollgate` command; nothing imports it)
 *
 * Other folders are imported through their index.ts; only workflow code (the
 * Temporal sandbox) reaches into another folder's pure `model/` directly.
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
      comment: 'src/metering imports only src/shared and src/decider.',
      severity: 'error',
      from: { path: '^src/metering/' },
      to: { path: '^src/(?!shared/|decider/|metering/)' },
    },
    {
      name: 'billing-imports-metering-decider-shared',
      comment: 'src/billing (accounts, pricing, statements) imports only src/metering, src/decider and src/shared.',
      severity: 'error',
      from: { path: '^src/billing/' },
      to: { path: '^src/(?!shared/|decider/|metering/|billing/)' },
    },
    {
      name: 'jobs-imports-decider-shared',
      comment: 'src/jobs (deferred jobs: record, store, ports, model) imports only src/decider and src/shared.',
      severity: 'error',
      from: { path: '^src/jobs/' },
      to: { path: '^src/(?!shared/|decider/|jobs/)' },
    },
    {
      name: 'admin-below-the-edge',
      comment:
        'src/admin (the admin API: schema, resolvers, tokens) imports workflows, jobs, billing, metering, decider and shared, never graphql: the config table it changes is reached through its AdminStore port, which the API process (src/graphql) implements over src/graphql/config and hands in.',
      severity: 'error',
      from: { path: '^src/admin/' },
      to: { path: '^src/(?!shared/|decider/|metering/|billing/|jobs/|workflows/|admin/)' },
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
      from: { path: '^src/([a-z]+)/', pathNot: ['^src/workflows/workflows/', '^src/cli/'] },
      to: {
        path: '^src/([a-z]+)/.+',
        pathNot: ['^src/$1/', '^src/[a-z]+/index\\.ts$'],
      },
    },
    {
      name: 'workflow-code-imports-other-folders-model-only',
      comment: 'Workflow code reaches another folder only through its pure model/ (the index would pull I/O into the sandbox).',
      severity: 'error',
      from: { path: '^src/workflows/workflows/' },
      to: { path: '^src/(?!workflows/)[a-z]+/(?!model/)' },
    },
    {
      name: 'gateway-is-an-edge',
      comment:
        'src/gateway (tollgate in front of an upstream) is imported only by the published entries, the CLI, and the one file of the API process that chooses what it serves (src/graphql/surface.ts: the demo, or an upstream in gateway mode). The gateway is built on the edge (useTollgate); the process is the edge plus a surface, so it reaches the gateway through that single file rather than every graphql file.',
      severity: 'error',
      from: { path: '^src/(?!gateway/|package/|cli/)', pathNot: '^src/graphql/surface\\.ts$' },
      to: { path: '^src/gateway/' },
    },
    {
      name: 'cli-is-the-outside',
      comment: 'src/cli (the `tollgate` command) is imported by nothing in src/.',
      severity: 'error',
      from: { path: '^src/(?!cli/)' },
      to: { path: '^src/cli/' },
    },
    {
      name: 'cli-imports-indexes-and-the-api-entry',
      comment: 'The CLI imports folders through their index.ts, and the API process through its entry (src/graphql/server.ts).',
      severity: 'error',
      from: { path: '^src/cli/' },
      to: { path: '^src/(?!cli/)[a-z]+/.+', pathNot: ['^src/[a-z]+/index\\.ts$', '^src/graphql/server\\.ts$'] },
    },
    {
      name: 'package-is-the-outside',
      comment: 'src/package (the published entries) is imported by nothing in src/.',
      severity: 'error',
      from: { path: '^src/(?!package/)' },
      to: { path: '^src/package/' },
    },
    {
      name: 'package-never-reaches-the-demo',
      comment: 'The demo API and the app serving it are not part of the published surface.',
      severity: 'error',
      from: { path: '^src/package/' },
      to: { path: '^src/graphql/(demo/|app\\.ts$|api-process\\.ts$|server\\.ts$)', reachable: true },
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
