/** Waiting and looking at processes, for tests that run real pipelines. */
import fs from 'node:fs';
import { loadConfig, type LinkflowConfig } from '../temporal.config.ts';

/** Polls until `check` gives a value (not undefined or false); fails with `what` after the timeout. */
export async function until<T>(what: string, check: () => Promise<T | undefined | false>, options: { everyMs?: number; timeoutMs?: number } = {}): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, options.everyMs ?? 200));
  }
}

/** Polls a synchronous condition (a process's output, a file) every 20 ms; fails with `what` after `ms`. */
export async function untilTrue(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`deadline: ${what} after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `promise`, or a failure naming `what` if it has not settled after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`deadline: ${what} after ${ms} ms`)), ms)));
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Processes whose command line mentions the text (the emulator's argv carries the workspace). */
export function processesMentioning(text: string): string[] {
  const found: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmdline.includes(text)) found.push(`${pid}: ${cmdline.slice(0, 160)}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

/** Short backoff and a given heartbeat timeout, so failure tests take seconds. */
export function fastRetryConfig(address: string, heartbeatTimeout: string, extra: Partial<LinkflowConfig['retry']> = {}): LinkflowConfig {
  return loadConfig(
    {
      address,
      retry: {
        maximumAttempts: 3,
        initialInterval: '500ms',
        backoffCoefficient: 1,
        maximumInterval: '1s',
        infrastructureAttempts: 5,
        infrastructureInitialInterval: '500ms',
        ...extra,
      },
      activity: { heartbeatTimeout, startToCloseTimeout: '10m' },
    },
    {},
  );
}
