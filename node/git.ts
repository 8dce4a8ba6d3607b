/** What git says of a checkout on this machine (linkflow's own, or ModelLink's for a benchmark's fingerprint). */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

function git(args: string[], cwd: string): string | undefined {
  try {
    return execFileSync('git', args, { cwd, encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** The commit checked out in `dir` (abbreviated with `short`); undefined when `dir` is not a git checkout or git is missing. */
export function gitCommit(dir: string, opts: { short?: boolean } = {}): string | undefined {
  if (!fs.existsSync(dir)) return undefined;
  return git(['rev-parse', ...(opts.short ? ['--short'] : []), 'HEAD'], dir) || undefined;
}

/** Whether tracked files in `dir` differ from its commit (undefined when git cannot tell). */
export function gitTreeDirty(dir: string): boolean | undefined {
  const status = git(['status', '--porcelain', '--untracked-files=no'], dir);
  return status === undefined ? undefined : status !== '';
}
