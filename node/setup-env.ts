/** The environment a node's processes start in: a setup script such as Ascend's set_env.sh, sourced once. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

const setupCache = new Map<string, Record<string, string>>();

/**
 * The environment after sourcing a setup script such as Ascend's set_env.sh. The path is passed
 * as an argument to a fixed bash program, so it never becomes part of a shell string.
 */
export function loadSetupEnv(script: string, base: Record<string, string | undefined> = process.env): Record<string, string> {
  const cached = setupCache.get(script);
  if (cached) return cached;
  if (!fs.existsSync(script)) throw new Error(`setup script ${script} does not exist (modellink.setupScript)`);
  const result = spawnSync('bash', ['-c', 'set -a; . "$1" >/dev/null 2>&1 || exit 97; env -0', 'linkflow-setup', script], {
    env: base,
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`sourcing ${script} failed (exit ${result.status}): ${result.stderr.trim().slice(0, 500)}`);
  const env: Record<string, string> = {};
  for (const entry of result.stdout.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  setupCache.set(script, env);
  return env;
}
