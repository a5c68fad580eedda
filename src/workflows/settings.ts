/**
 * The workflows' settings from configuration: each maps a typed slice of
 * `AppConfig` to the plain, JSON-safe settings a workflow takes as input.
 */
import type { AppConfig } from '../shared/index.js';
import type { AccountTimings, AuditSettings, JobSweepSettings, MeterSettings } from './workflows/index.js';

/** The pump workflows' settings from configuration. */
export function meterSettings(config: Pick<AppConfig, 'meter'>): MeterSettings {
  return {
    idleDelayMs: config.meter.idleDelayMs,
    iterationsPerRun: config.meter.iterationsPerRun,
    activityTimeoutMs: config.meter.activityTimeoutMs,
    heartbeatTimeoutMs: config.meter.heartbeatTimeoutMs,
    idleWaitMs: config.meter.idleWaitMs,
    maxRunEvents: config.meter.maxRunEvents,
    maxRunBytes: config.meter.maxRunBytes,
  };
}

/** The audit workflow's settings from configuration. */
export function auditSettings(config: Pick<AppConfig, 'audit'>): AuditSettings {
  return {
    intervalMs: config.audit.intervalMs,
    scanCount: config.audit.scanCount,
    pagesPerRun: config.audit.pagesPerRun,
    activityTimeoutMs: config.audit.activityTimeoutMs,
  };
}

/** The jobs sweep's settings from configuration. */
export function jobSweepSettings(config: Pick<AppConfig, 'jobSweep'>): JobSweepSettings {
  const { jobSweep } = config;
  return {
    intervalMs: jobSweep.intervalMs,
    graceMs: jobSweep.graceMs,
    pageSize: jobSweep.pageSize,
    pagesPerRun: jobSweep.pagesPerRun,
    activityTimeoutMs: jobSweep.activityTimeoutMs,
  };
}

/** The account workflows' timings from configuration. */
export function accountTimings(config: Pick<AppConfig, 'account'>): AccountTimings {
  const { account } = config;
  return {
    graceMs: account.lateGraceMs,
    activityTimeoutMs: account.activityTimeoutMs,
    // one attempt: the POST plus the two record writes around it
    deliveryTimeoutMs: account.webhookTimeoutMs + 5_000,
    webhookRetryInitialMs: account.webhookRetryInitialMs,
    webhookRetryMaxMs: account.webhookRetryMaxMs,
    webhookMaxAttempts: account.webhookMaxAttempts,
    noAccountRecheckMs: account.noAccountRecheckMs,
  };
}
