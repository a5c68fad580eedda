import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_SCHEMA, ValidationError, describeConfig, loadConfig } from '../../../src/shared/index.js';

const REQUIRED = { REDIS_URL: 'redis://127.0.0.1:6390', TEMPORAL_ADDRESS: '127.0.0.1:7243' };

function configError(env: Record<string, string>): ValidationError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
  throw new Error('loadConfig accepted the environment');
}

describe('loadConfig', () => {
  it('applies the local-development defaults when only the required endpoints are set', () => {
    const config = loadConfig(REQUIRED);
    expect(config).toEqual({
      log: { level: 'info' },
      api: {
        host: '127.0.0.1',
        port: 4000,
        anonymous: 'reject',
        demoKeysFile: '.data/demo-keys.json',
        adminTokenFile: '.data/admin-token.json',
        isDemoSeeded: true,
        configPollMs: 5_000,
        jobStatusPerSecond: 10,
        unknownKeysPerSecond: 5,
        trustedProxies: '',
        maxBodyBytes: 65_536,
        inFlight: { critical: 128, default: 96, sheddable: 64 },
        deferralLane: { maxInFlight: 16, maxQueued: 64 },
      },
      redis: {
        url: 'redis://127.0.0.1:6390',
        clusterNodes: undefined,
        commandTimeoutMs: 1_000,
        deciderTimeoutMs: 50,
        shardCount: 256,
        spoolPath: '.data/spool/decider.spool',
        spoolReplayMs: 5_000,
        instances: { deployment: 'api', heartbeatMs: 2_000, floor: 1 },
      },
      temporal: { address: '127.0.0.1:7243', namespace: 'default', taskQueue: 'tollgate' },
      dynamodb: { endpoint: undefined, region: 'local', tablePrefix: 'tollgate_' },
      meter: {
        isEnabled: true,
        batchSize: 500,
        shardsPerPump: 16,
        claimMinIdleMs: 10_000,
        idleDelayMs: 1_000,
        idleWaitMs: 30_000,
        iterationsPerRun: 200,
        maxRunEvents: 400,
        maxRunBytes: 262_144,
        activityTimeoutMs: 60_000,
        heartbeatTimeoutMs: 10_000,
        batchesInFlight: 16,
        maxTransactItems: 100,
        transactionsInFlight: 1,
      },
      audit: { isEnabled: true, intervalMs: 300_000, scanCount: 1_000, pagesPerRun: 200, activityTimeoutMs: 120_000 },
      worker: {
        metricsPort: 0,
        maxCachedWorkflows: 144,
        workflowTaskSlots: 40,
        activitySlots: 80,
        stallAfterMs: 120_000,
        stickyTimeoutMs: 10_000,
      },
      jobs: { taskQueue: 'tollgate-jobs', ttlMs: 86_400_000, retryMinMs: 1_000, retryMaxMs: 300_000, maxQueuedPerTenant: 100 },
      jobSweep: { isEnabled: true, intervalMs: 60_000, graceMs: 60_000, pageSize: 100, pagesPerRun: 200, activityTimeoutMs: 120_000 },
      account: {
        isEnabled: true,
        lateGraceMs: 3_600_000,
        activityTimeoutMs: 60_000,
        webhookTimeoutMs: 10_000,
        webhookRetryInitialMs: 1_000,
        webhookRetryMaxMs: 300_000,
        webhookMaxAttempts: 50,
        noAccountRecheckMs: 3_600_000,
        wakeMaxJobs: 1_000,
      },
    });
  });

  it('reclaims a crashed pump batch after the heartbeat timeout unless METER_CLAIM_MIN_IDLE_MS says otherwise', () => {
    expect(loadConfig({ ...REQUIRED, METER_HEARTBEAT_TIMEOUT_MS: '4000' }).meter.claimMinIdleMs).toBe(4_000);
    expect(loadConfig({ ...REQUIRED, METER_HEARTBEAT_TIMEOUT_MS: '4000', METER_CLAIM_MIN_IDLE_MS: '9000' }).meter.claimMinIdleMs).toBe(
      9_000,
    );
    expect(configError({ ...REQUIRED, METER_CLAIM_MIN_IDLE_MS: '0' }).message).toContain('METER_CLAIM_MIN_IDLE_MS');
  });

  it('reads the audit and worker-metrics settings', () => {
    const config = loadConfig({
      ...REQUIRED,
      AUDIT_ENABLED: 'false',
      AUDIT_INTERVAL_MS: '60000',
      AUDIT_SCAN_COUNT: '50',
      WORKER_METRICS_PORT: '9464',
    });
    expect(config.audit).toMatchObject({ isEnabled: false, intervalMs: 60_000, scanCount: 50 });
    expect(config.worker).toEqual({
      metricsPort: 9_464,
      maxCachedWorkflows: 16 + 128,
      workflowTaskSlots: 40,
      activitySlots: 16 + 64,
      stallAfterMs: 120_000,
      stickyTimeoutMs: 10_000,
    });
    // the worker's cache and activity slots follow the pump count (256 shards / 16 per pump by default) unless set
    expect(loadConfig({ ...REQUIRED, DECIDER_SHARDS: '1024' }).worker).toMatchObject({
      maxCachedWorkflows: 64 + 128,
      activitySlots: 64 + 64,
    });
    expect(loadConfig({ ...REQUIRED, DECIDER_SHARDS: '1000', METER_SHARDS_PER_PUMP: '1' }).worker).toMatchObject({
      maxCachedWorkflows: 1_128,
      activitySlots: 1_064,
    });
    expect(loadConfig({ ...REQUIRED, DECIDER_SHARDS: '100', METER_SHARDS_PER_PUMP: '16' }).worker).toMatchObject({
      maxCachedWorkflows: 7 + 128,
    });
    expect(loadConfig({ ...REQUIRED, WORKER_MAX_CACHED_WORKFLOWS: '50', WORKER_ACTIVITY_SLOTS: '70' }).worker).toMatchObject({
      maxCachedWorkflows: 50,
      activitySlots: 70,
    });
    expect(
      configError({ ...REQUIRED, AUDIT_SCAN_COUNT: '0' })
        .message.split('\n')[1]
        ?.split(':')[0],
    ).toBe('AUDIT_SCAN_COUNT');
  });

  it('reads the deferred-job settings, never letting the longest retry wait fall below the shortest', () => {
    const config = loadConfig({
      ...REQUIRED,
      JOBS_TTL_MS: '1500',
      JOBS_RETRY_MIN_MS: '2000',
      JOBS_RETRY_MAX_MS: '500',
      JOBS_MAX_QUEUED_PER_TENANT: '3',
    });
    expect(config.jobs).toEqual({ taskQueue: 'tollgate-jobs', ttlMs: 1_500, retryMinMs: 2_000, retryMaxMs: 2_000, maxQueuedPerTenant: 3 });
    expect(
      configError({ ...REQUIRED, JOBS_MAX_QUEUED_PER_TENANT: '0' })
        .message.split('\n')[1]
        ?.split(':')[0],
    ).toBe('JOBS_MAX_QUEUED_PER_TENANT');
  });

  it('reads the trusted proxies and names an entry that is no address or range', () => {
    expect(loadConfig({ ...REQUIRED, API_TRUSTED_PROXIES: '10.0.0.0/8, ::1' }).api.trustedProxies).toBe('10.0.0.0/8, ::1');
    expect(configError({ ...REQUIRED, API_TRUSTED_PROXIES: '10.0.0.0/8,10.0.0.0/33' }).message).toBe(
      'invalid configuration:\nAPI_TRUSTED_PROXIES: not an IP address or CIDR range: "10.0.0.0/33"',
    );
    expect(configError({ ...REQUIRED, API_TRUSTED_PROXIES: 'proxy.internal' }).message).toContain('"proxy.internal"');
  });

  it('reads the jobs sweep settings', () => {
    const config = loadConfig({ ...REQUIRED, JOBS_SWEEP_ENABLED: 'false', JOBS_SWEEP_INTERVAL_MS: '5000', JOBS_SWEEP_PAGE_SIZE: '10' });
    expect(config.jobSweep).toMatchObject({ isEnabled: false, intervalMs: 5_000, pageSize: 10, graceMs: 60_000 });
    expect(
      configError({ ...REQUIRED, JOBS_SWEEP_PAGE_SIZE: '1001' })
        .message.split('\n')[1]
        ?.split(':')[0],
    ).toBe('JOBS_SWEEP_PAGE_SIZE');
  });

  it('names every missing production-critical variable at once', () => {
    const error = configError({});
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toBe('invalid configuration:\nREDIS_URL: is required\nTEMPORAL_ADDRESS: is required');
  });

  it('treats empty strings as unset', () => {
    expect(configError({ ...REQUIRED, REDIS_URL: '' }).message).toBe('invalid configuration:\nREDIS_URL: is required');
  });

  it('rejects malformed values with the variable name', () => {
    const error = configError({ ...REQUIRED, API_PORT: '70000', REDIS_URL: 'http://x', DECIDER_TIMEOUT_MS: '-1' });
    expect(
      error.message
        .split('\n')
        .slice(1)
        .map((line) => line.split(':')[0]),
    ).toEqual(['API_PORT', 'REDIS_URL', 'DECIDER_TIMEOUT_MS']);
  });

  it('parses Redis Cluster seeds and rejects a seed that is not host:port', () => {
    const config = loadConfig({ ...REQUIRED, REDIS_CLUSTER_NODES: '127.0.0.1:7001, 127.0.0.1:7002' });
    expect(config.redis.clusterNodes).toEqual([
      { host: '127.0.0.1', port: 7001 },
      { host: '127.0.0.1', port: 7002 },
    ]);
    expect(configError({ ...REQUIRED, REDIS_CLUSTER_NODES: '127.0.0.1' }).message).toBe(
      "invalid configuration:\nREDIS_CLUSTER_NODES: '127.0.0.1' is not host:port",
    );
  });

  it('ignores variables it does not own', () => {
    expect(loadConfig({ ...REQUIRED, PATH: '/bin', API_PORT: '4100' }).api.port).toBe(4100);
  });
});

describe('describeConfig', () => {
  it('documents every variable of the schema with a description', () => {
    const rows = describeConfig();
    expect(rows.map((row) => row.name)).toEqual(Object.keys(CONFIG_SCHEMA.shape));
    for (const row of rows) expect(row.description.length, row.name).toBeGreaterThan(10);
    expect(rows.find((row) => row.name === 'API_PORT')?.defaultValue).toBe('4000');
    expect(rows.find((row) => row.name === 'REDIS_URL')?.defaultValue).toBe('');
  });

  it('is mirrored by the README configuration table (no variable undocumented)', () => {
    const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
    for (const row of describeConfig()) {
      expect(readme, `README lacks ${row.name}`).toContain(`| \`${row.name}\` |`);
    }
  });
});

describe('loadConfig in gateway mode', () => {
  it('serves the demo without TOLLGATE_UPSTREAM, and reads the gateway slice with it', () => {
    expect(loadConfig(REQUIRED).gateway).toBeUndefined();
    const config = loadConfig({
      ...REQUIRED,
      TOLLGATE_UPSTREAM: 'https://api.example.com/graphql',
      TOLLGATE_UPSTREAM_SCHEMA: 'schema.graphql',
      TOLLGATE_FORWARD_HEADERS: 'Accept-Language, X-Trace-Id',
      TOLLGATE_TENANT_HEADER: 'X-Tenant-Id',
      TOLLGATE_UPSTREAM_FAILURE_CHARGE: 'reserved',
    });
    expect(config.gateway).toEqual({
      upstreamUrl: 'https://api.example.com/graphql',
      schemaFile: 'schema.graphql',
      costsFile: undefined,
      timeoutMs: 10_000,
      failureCharge: 'reserved',
      forwardHeaders: ['accept-language', 'x-trace-id'],
      identityHeaders: { tenant: 'x-tenant-id' },
      readyCacheMs: 5_000,
    });
  });

  it('names every bad gateway variable', () => {
    const error = configError({
      ...REQUIRED,
      TOLLGATE_UPSTREAM: 'ftp://api.example.com',
      TOLLGATE_UPSTREAM_FAILURE_CHARGE: 'double',
      TOLLGATE_FORWARD_HEADERS: 'x-ok, bad header',
      TOLLGATE_KEY_ID_HEADER: 'x:key',
    });
    expect(error.message).toContain('TOLLGATE_UPSTREAM: must be an http:// or https:// URL');
    expect(error.message).toContain('TOLLGATE_UPSTREAM_FAILURE_CHARGE');
    expect(error.message).toContain("TOLLGATE_FORWARD_HEADERS: 'bad header' is not an HTTP header name");
    expect(error.message).toContain('TOLLGATE_KEY_ID_HEADER: must be an HTTP header name');
  });

  it('refuses gateway settings without an upstream rather than ignoring them', () => {
    const error = configError({ ...REQUIRED, TOLLGATE_COSTS: 'costs.yaml' });
    expect(error.message).toContain('TOLLGATE_COSTS: only meaningful with TOLLGATE_UPSTREAM');
  });
});
