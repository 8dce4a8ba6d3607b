/**
 * A node's health check: a command configured for the pool (for Ascend, `npu-smi info` and a check
 * that the expected devices are present and healthy), run as an argv with a time limit. Exit 0 is
 * healthy; anything else, or no answer in time, is the reason the node is quarantined.
 */
import { execFile } from 'node:child_process';

export interface HealthCheckResult {
  healthy: boolean;
  /** Why not: the exit status and the last lines of its output. */
  reason?: string;
}

const MAX_OUTPUT_LINES = 5;

export function runHealthCheck(argv: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Promise<HealthCheckResult> {
  return new Promise((resolve) => {
    execFile(argv[0], argv.slice(1), { timeout: timeoutMs, killSignal: 'SIGKILL', env, maxBuffer: 4 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (!err) return resolve({ healthy: true });
      const tail = `${stdout}\n${stderr}`
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .slice(-MAX_OUTPUT_LINES)
        .join(' | ');
      const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: number | string; signal?: string };
      const how =
        e.code === 'ENOENT'
          ? `${argv[0]} not found`
          : e.killed
            ? `no answer within ${Math.round(timeoutMs / 1000)} s`
            : typeof e.code === 'number'
              ? `exit status ${e.code}`
              : `${e.signal ?? e.code ?? e.message}`;
      resolve({ healthy: false, reason: `health check ${JSON.stringify(argv.join(' '))} failed (${how})${tail ? `: ${tail}` : ''}` });
    });
  });
}
