/**
 * How linkflow reaches Temporal and how patient it is. Defaults suit the local dev server. The
 * connection (address, namespace, API key, TLS) is configured as for Temporal's own CLI and SDKs: a
 * temporal.toml profile and the TEMPORAL_* variables (common/temporal-profile.ts, @temporalio/envconfig);
 * linkflow's own settings (task queue, timeouts, retries, dev server) are LINKFLOW_* variables.
 * Explicit overrides (tests, command options) win over both.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { durationSchema, durationToMs } from './common/duration.ts';
import { formatPath } from './common/issue-path.ts';
import { PROJECT_ROOT } from './common/project-root.ts';
import type { RetrySettingsInput } from './contracts/run-state.ts';
import type { PoolSettings } from './pool/allocator.ts';
import type { NotifySettings } from './spec/notify.ts';
import { anyTlsSetting, checkClientCertPair, temporalProfile, type TlsSettings } from './common/temporal-profile.ts';

const envBoolean = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')]);
const envInt = z.union([z.number(), z.string().regex(/^\d+$/, 'expected a whole number').transform(Number)]).pipe(z.number().int().positive());
const envNumber = z
  .union([
    z.number(),
    z
      .string()
      .regex(/^\d+(\.\d+)?$/, 'expected a number')
      .transform(Number),
  ])
  .pipe(z.number().positive());

/** A command as an argv array; from the environment, a JSON array of strings. */
const argvSchema = z.union([
  z.array(z.string().min(1)).min(1),
  z
    .string()
    .transform((v, ctx) => {
      try {
        return JSON.parse(v) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'expected a JSON array of strings, e.g. ["/usr/local/bin/check-npus", "8"]' });
        return z.NEVER;
      }
    })
    .pipe(z.array(z.string().min(1)).min(1)),
]);

const configSchema = z.strictObject({
  address: z.string().min(1).default('127.0.0.1:7233'),
  namespace: z.string().min(1).default('default'),
  /** The pool's task queue; a spec's cluster.taskQueue overrides it per pipeline. */
  taskQueue: z.string().min(1).default('linkflow'),
  tls: z
    .strictObject({
      /** Unset: TLS when there is an API key or any other TLS setting; false: never (TEMPORAL_TLS=false, a profile's tls.disabled). */
      enabled: envBoolean.optional(),
      clientCertPath: z.string().optional(),
      /** PEM contents instead of a path (TEMPORAL_TLS_CLIENT_CERT_DATA, a profile's client_cert_data); likewise below. */
      clientCertData: z.string().optional(),
      clientKeyPath: z.string().optional(),
      clientKeyData: z.string().optional(),
      serverCaCertPath: z.string().optional(),
      serverCaCertData: z.string().optional(),
      serverName: z.string().optional(),
    })
    .default({}),
  /** The Web UI of the server (`https://temporal.example.com`), for the links `run` prints; a local dev server's UI is found by itself. */
  uiUrl: z.string().url().optional(),
  /** Temporal Cloud API key; implies TLS unless TLS is turned off. */
  apiKey: z.string().optional(),
  /** gRPC headers of the profile (grpc_meta, TEMPORAL_GRPC_META_*). */
  grpcMeta: z.record(z.string(), z.string()).optional(),
  activity: z
    .strictObject({
      /** A worker that stops heartbeating for this long is considered lost; its attempt moves to a live worker. */
      heartbeatTimeout: durationSchema.default('60s'),
      /** Upper bound of one attempt of a stage (a training run can take weeks). */
      startToCloseTimeout: durationSchema.default('30d'),
    })
    .default({ heartbeatTimeout: '60s', startToCloseTimeout: '30d' }),
  retry: z
    .strictObject({
      /** Attempts per stage that may end in errors of the job itself (crash, OOM, NaN…), the first included; a stage's maxAttempts overrides it. */
      maximumAttempts: envInt.default(5),
      initialInterval: durationSchema.default('10s'),
      backoffCoefficient: envNumber.default(2),
      maximumInterval: durationSchema.default('5m'),
      /** Infrastructure faults (communication, lost node, killed, hang, segfault) have a budget of their own, so they never use up the one above. */
      infrastructureAttempts: envInt.default(20),
      infrastructureInitialInterval: durationSchema.default('30s'),
      /** A workflow run continues as new after this many attempts (or when Temporal suggests it), keeping its attempt log. */
      continueAsNewAfterAttempts: envInt.default(50),
    })
    .default({
      maximumAttempts: 5,
      initialInterval: '10s',
      backoffCoefficient: 2,
      maximumInterval: '5m',
      infrastructureAttempts: 20,
      infrastructureInitialInterval: '30s',
      continueAsNewAfterAttempts: 50,
    }),
  /** The pool's allocator (one per pool) and its nodes: the workers of one pool should share these. */
  pool: z
    .strictObject({
      /** A node whose worker has not renewed for this long leaves the pool, and what it held is released. */
      nodeTimeout: durationSchema.default('30s'),
      /** How often a node's worker renews its place in the pool. */
      renewInterval: durationSchema.default('5s'),
      /** A node blamed for this many infrastructure failures within quarantineWindow is quarantined. */
      quarantineAfter: envInt.default(3),
      quarantineWindow: durationSchema.default('1h'),
      /** How long a quarantined node is not granted. */
      coolDown: durationSchema.default('30m'),
      /** Run on a node before a rank starts there (argv; exit 0 = healthy), e.g. a script around `npu-smi info`. */
      healthCheck: argvSchema.optional(),
      healthCheckTimeout: durationSchema.default('60s'),
      /** How often the allocator checks that the pipelines holding nodes still run (a terminated one's nodes are reclaimed). */
      reclaimInterval: durationSchema.default('60s'),
      /** The allocator continues as new after this many history events. */
      historyLimit: envInt.default(4000),
    })
    .default({
      nodeTimeout: '30s',
      renewInterval: '5s',
      quarantineAfter: 3,
      quarantineWindow: '1h',
      coolDown: '30m',
      healthCheckTimeout: '60s',
      reclaimInterval: '60s',
      historyLimit: 4000,
    }),
  /** The webhook pipelines without a `notify:` section report to (all events; see spec/notify.ts). */
  notify: z
    .strictObject({
      webhook: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional(),
      format: z.enum(['json', 'slack']).default('json'),
      waitingForNodesAfter: durationSchema.default('30m'),
    })
    .default({ format: 'json', waitingForNodesAfter: '30m' }),
  dev: z
    .strictObject({
      /** SQLite file of the embedded dev server, so `linkflow dev` keeps its state across restarts. */
      dbFile: z.string().default(path.join(PROJECT_ROOT, '.linkflow', 'temporal-dev.db')),
      uiPort: envInt.default(8233),
    })
    .default({ dbFile: path.join(PROJECT_ROOT, '.linkflow', 'temporal-dev.db'), uiPort: 8233 }),
});

export type LinkflowConfig = z.infer<typeof configSchema>;

/** What a workflow needs of the config (plain data, carried in its input). */
export type RetrySettings = RetrySettingsInput;

type Env = Record<string, string | undefined>;

/** linkflow's own settings from LINKFLOW_* variables; the connection comes from the Temporal profile (connectionFromProfile). */
function fromEnv(env: Env): Record<string, unknown> {
  const pick = (entries: [string, unknown][]): Record<string, unknown> => Object.fromEntries(entries.filter(([, v]) => v !== undefined && v !== ''));
  return pick([
    ['taskQueue', env.LINKFLOW_TASK_QUEUE],
    ['uiUrl', env.LINKFLOW_UI_URL],
    [
      'activity',
      pick([
        ['heartbeatTimeout', env.LINKFLOW_HEARTBEAT_TIMEOUT],
        ['startToCloseTimeout', env.LINKFLOW_STAGE_TIMEOUT],
      ]),
    ],
    [
      'retry',
      pick([
        ['maximumAttempts', env.LINKFLOW_RETRY_MAX_ATTEMPTS],
        ['initialInterval', env.LINKFLOW_RETRY_INITIAL_INTERVAL],
        ['backoffCoefficient', env.LINKFLOW_RETRY_BACKOFF],
        ['maximumInterval', env.LINKFLOW_RETRY_MAX_INTERVAL],
        ['infrastructureAttempts', env.LINKFLOW_RETRY_INFRA_ATTEMPTS],
        ['infrastructureInitialInterval', env.LINKFLOW_RETRY_INFRA_INITIAL_INTERVAL],
        ['continueAsNewAfterAttempts', env.LINKFLOW_CONTINUE_AS_NEW_AFTER],
      ]),
    ],
    [
      'pool',
      pick([
        ['nodeTimeout', env.LINKFLOW_POOL_NODE_TIMEOUT],
        ['renewInterval', env.LINKFLOW_POOL_RENEW_INTERVAL],
        ['quarantineAfter', env.LINKFLOW_QUARANTINE_AFTER],
        ['quarantineWindow', env.LINKFLOW_QUARANTINE_WINDOW],
        ['coolDown', env.LINKFLOW_QUARANTINE_COOL_DOWN],
        ['healthCheck', env.LINKFLOW_HEALTH_CHECK],
        ['healthCheckTimeout', env.LINKFLOW_HEALTH_CHECK_TIMEOUT],
        ['reclaimInterval', env.LINKFLOW_POOL_RECLAIM_INTERVAL],
        ['historyLimit', env.LINKFLOW_POOL_HISTORY_LIMIT],
      ]),
    ],
    [
      'notify',
      pick([
        ['webhook', env.LINKFLOW_NOTIFY_WEBHOOK],
        ['format', env.LINKFLOW_NOTIFY_FORMAT],
        ['waitingForNodesAfter', env.LINKFLOW_NOTIFY_WAITING_AFTER],
      ]),
    ],
    [
      'dev',
      pick([
        ['dbFile', env.LINKFLOW_DEV_DB],
        ['uiPort', env.LINKFLOW_DEV_UI_PORT],
      ]),
    ],
  ]);
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' ? merge(b as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

export type ConfigOverrides = { [K in keyof LinkflowConfig]?: LinkflowConfig[K] extends object ? Partial<LinkflowConfig[K]> : LinkflowConfig[K] };

/** The connection of the Temporal profile (temporal.toml, TEMPORAL_PROFILE, TEMPORAL_* variables), without its unset fields. */
function connectionFromProfile(env: Env): Record<string, unknown> {
  const profile = temporalProfile(env);
  return Object.fromEntries(Object.entries(profile).filter(([, v]) => v !== undefined));
}

/**
 * Explicit TLS overrides win over the profile, field by field: a certificate given as a path replaces
 * one the profile gives as data (and the other way round), so the two never mix.
 */
function withExplicitTls(raw: Record<string, unknown>, overrides: ConfigOverrides): Record<string, unknown> {
  const explicit = overrides.tls;
  if (!explicit) return raw;
  const tls: TlsSettings = { ...(raw.tls as TlsSettings | undefined) };
  for (const name of ['clientCert', 'clientKey', 'serverCaCert'] as const) {
    const asPath = `${name}Path` as const;
    const data = `${name}Data` as const;
    if (explicit[asPath] !== undefined) delete tls[data];
    if (explicit[data] !== undefined) delete tls[asPath];
  }
  return { ...raw, tls: { ...tls, ...explicit } };
}

/**
 * Defaults, then the Temporal profile and the environment, then explicit overrides (tests, CLI flags).
 * Invalid values are reported with their path; a TLS client certificate without its key is an error.
 */
export function loadConfig(overrides: ConfigOverrides = {}, env: Env = process.env): LinkflowConfig {
  const raw = withExplicitTls(merge({ ...connectionFromProfile(env), ...fromEnv(env) }, overrides as Record<string, unknown>), overrides);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${formatPath(i.path)}: ${i.message}`);
    throw new Error(`invalid linkflow configuration (temporal.config.ts / environment):\n${lines.join('\n')}`);
  }
  const pairProblem = checkClientCertPair(parsed.data.tls);
  if (pairProblem) throw new Error(`invalid Temporal connection: ${pairProblem}`);
  return parsed.data;
}

export function retrySettings(config: LinkflowConfig): RetrySettings {
  return {
    maximumAttempts: config.retry.maximumAttempts,
    initialIntervalMs: durationToMs(config.retry.initialInterval),
    backoffCoefficient: config.retry.backoffCoefficient,
    maximumIntervalMs: durationToMs(config.retry.maximumInterval),
    infrastructureAttempts: config.retry.infrastructureAttempts,
    infrastructureInitialIntervalMs: durationToMs(config.retry.infrastructureInitialInterval),
    continueAsNewAfterAttempts: config.retry.continueAsNewAfterAttempts,
    heartbeatTimeoutMs: durationToMs(config.activity.heartbeatTimeout),
    startToCloseTimeoutMs: durationToMs(config.activity.startToCloseTimeout),
  };
}

/** The pool's rules as the allocator workflow takes them (plain milliseconds). */
export function poolSettings(config: LinkflowConfig): PoolSettings {
  return {
    nodeTimeoutMs: durationToMs(config.pool.nodeTimeout),
    quarantineFailures: config.pool.quarantineAfter,
    quarantineWindowMs: durationToMs(config.pool.quarantineWindow),
    coolDownMs: durationToMs(config.pool.coolDown),
    reclaimIntervalMs: durationToMs(config.pool.reclaimInterval),
    historyLimit: config.pool.historyLimit,
  };
}

/** The configured default webhook, for a pipeline whose spec has no `notify:` section. */
export function defaultNotify(config: LinkflowConfig): NotifySettings | undefined {
  const { webhook, format, waitingForNodesAfter } = config.notify;
  if (!webhook) return undefined;
  return {
    webhooks: [{ url: webhook, format, events: ['failed', 'succeeded', 'waiting-for-nodes', 'retry-budget'] }],
    waitingForNodesAfterMs: durationToMs(waitingForNodesAfter),
    retryBudgetUsed: 0.8,
  };
}

/** Whether the connection uses TLS: as configured, else with an API key or any TLS setting (envconfig's toClientOptions). */
export function usesTls(config: LinkflowConfig): boolean {
  return config.tls.enabled ?? (config.apiKey !== undefined || anyTlsSetting(config.tls));
}

/** Connection options for @temporalio/client and @temporalio/worker alike. */
export function connectionOptions(config: LinkflowConfig): { address: string; tls?: object | boolean; apiKey?: string; metadata?: Record<string, string> } {
  const { tls } = config;
  const pem = (p: string | undefined, data: string | undefined) => (p !== undefined ? fs.readFileSync(p) : data !== undefined ? Buffer.from(data) : undefined);
  const crt = pem(tls.clientCertPath, tls.clientCertData);
  const key = pem(tls.clientKeyPath, tls.clientKeyData);
  const tlsOption = usesTls(config)
    ? {
        serverNameOverride: tls.serverName,
        serverRootCACertificate: pem(tls.serverCaCertPath, tls.serverCaCertData),
        clientCertPair: crt && key ? { crt, key } : undefined,
      }
    : // Off on purpose with an API key: say so, or the SDK turns TLS on for the key.
      config.apiKey !== undefined
      ? false
      : undefined;
  return {
    address: config.address,
    ...(tlsOption !== undefined ? { tls: tlsOption } : {}),
    ...(config.apiKey ? { apiKey: config.apiKey } : {}),
    ...(config.grpcMeta ? { metadata: config.grpcMeta } : {}),
  };
}
