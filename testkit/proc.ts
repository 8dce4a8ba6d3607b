/** This machine's processes as /proc shows them (Linux): ids, parents, command lines, environments. */
import fs from 'node:fs';

export function pids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number);
}

export function readProc(pid: number, file: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

/** The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  const stat = readProc(pid, 'stat');
  return stat ? stat.slice(stat.lastIndexOf(')') + 2).split(' ') : undefined;
}

export function parentOf(pid: number): number | undefined {
  const f = statFields(pid);
  return f ? Number(f[1]) : undefined;
}

/** A zombie has exited and only waits for its parent to reap it: nothing left to stop. */
export function isZombie(pid: number): boolean {
  return statFields(pid)?.[0] === 'Z';
}

export function commandLine(pid: number): string {
  return (readProc(pid, 'cmdline') ?? '').split('\0').filter(Boolean).join(' ');
}

/** Processes whose environment (as they were started with it) holds `entry` (`NAME=value`). */
export function processesWithEnv(entry: string): number[] {
  return pids().filter((pid) => (readProc(pid, 'environ') ?? '').split('\0').includes(entry));
}

/** `roots` and everything below them, parents before children. */
export function descendantsAndSelf(roots: number[]): number[] {
  const parents = new Map(pids().map((p) => [p, parentOf(p)]));
  const found = [...roots];
  for (let i = 0; i < found.length; i++) for (const [p, parent] of parents) if (parent === found[i] && !found.includes(p)) found.push(p);
  return found;
}
