/**
 * The host side of a test cluster: processes started in its network namespace, their process
 * groups, the cgroups and mounts they leave, and the namespace and veth themselves. Everything here
 * is synchronous on purpose, so the same teardown also runs from a process 'exit' handler when a
 * test run dies before its own cleanup.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const CGROUP_FS = '/sys/fs/cgroup';

/** `ip netns exec` remounts /sys and hides the cgroup hierarchies from the kubelet: nsenter changes only the network. */
export function spawnInNetns(netns: string, argv: string[], logFile: string, options: { env?: Record<string, string>; cwd?: string } = {}): number {
  const out = fs.openSync(logFile, 'a');
  const child = spawn('nsenter', [`--net=/var/run/netns/${netns}`, '--', ...argv], {
    // Its own process group, so stopping it reaches whatever it forks.
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...process.env, ...options.env },
    cwd: options.cwd,
  });
  fs.closeSync(out);
  child.unref();
  if (child.pid === undefined) throw new Error(`could not start ${argv[0]} (see ${logFile})`);
  return child.pid;
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !isZombie(pid);
  } catch {
    return false;
  }
}

function isZombie(pid: number): boolean {
  const stat = readProc(pid, 'stat');
  return stat === undefined || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is gone
  }
}

/** SIGTERM to the process group, SIGKILL after `graceMs`; returns once the leader is gone. */
export function stopGroup(pgid: number, graceMs: number): void {
  if (!alive(pgid)) return signalGroup(pgid, 'SIGKILL');
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(pgid) && Date.now() < deadline) sleepSync(50);
  signalGroup(pgid, 'SIGKILL');
  const end = Date.now() + 5_000;
  while (alive(pgid) && Date.now() < end) sleepSync(20);
}

export function killGroup(pgid: number): void {
  signalGroup(pgid, 'SIGKILL');
}

export function readProc(pid: number, file: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

function allPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number);
}

/** Processes whose argv contains `text` as one of its arguments' substrings (shims name their containerd's socket). */
export function pidsWithArgument(text: string): number[] {
  return allPids().filter((pid) => pid !== process.pid && (readProc(pid, 'cmdline') ?? '').split('\0').some((a) => a.includes(text)));
}

/** The cgroup v1 hierarchies (and the v2 one of a hybrid setup) mounted under /sys/fs/cgroup. */
function hierarchies(): string[] {
  try {
    return fs
      .readdirSync(CGROUP_FS)
      .map((h) => path.join(CGROUP_FS, h))
      .filter((h) => fs.existsSync(path.join(h, 'cgroup.procs')));
  } catch {
    return [];
  }
}

/** Creates the cgroup in every hierarchy (the kubelet insists that its cgroupRoot exists in each). */
export function createCgroup(cgroup: string): void {
  for (const h of hierarchies()) {
    const dir = path.join(h, cgroup);
    fs.mkdirSync(dir, { recursive: true });
    // A new cpuset cgroup has no CPUs or memory nodes; children would inherit the empty sets.
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      const parent = path.join(h, f);
      if (fs.existsSync(parent)) fs.writeFileSync(path.join(dir, f), fs.readFileSync(parent, 'utf8').trim() || '0');
    }
  }
}

/** Every cgroup folder of `cgroup` and below, in every hierarchy, deepest first. */
export function cgroupDirs(cgroup: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name));
    found.push(dir);
  };
  for (const h of hierarchies()) if (fs.existsSync(path.join(h, cgroup))) walk(path.join(h, cgroup));
  return found;
}

export function pidsInCgroup(cgroup: string): number[] {
  const pids = new Set<number>();
  for (const dir of cgroupDirs(cgroup)) {
    try {
      for (const line of fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (line.trim()) pids.add(Number(line));
    } catch {
      // removed meanwhile
    }
  }
  return [...pids];
}

/** SIGKILLs every process of the cgroup tree until none is left (or 10 s pass). */
export function killCgroup(cgroup: string): void {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pids = pidsInCgroup(cgroup).filter((p) => p !== process.pid);
    if (pids.length === 0 || Date.now() > deadline) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    sleepSync(50);
  }
}

/** Removes the cgroup tree (deepest first); returns the folders that would not go. */
export function removeCgroup(cgroup: string): string[] {
  const left: string[] = [];
  for (const dir of cgroupDirs(cgroup)) {
    let removed = false;
    for (let i = 0; i < 50 && !removed; i++) {
      try {
        fs.rmdirSync(dir);
        removed = true;
      } catch {
        sleepSync(100);
      }
    }
    if (!removed) left.push(dir);
  }
  return left;
}

/** Mount points at or under `dir`, deepest first (from this process's mountinfo: the cluster shares our mount namespace). */
export function mountsUnder(dir: string): string[] {
  const points = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[4].replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(dir + '/'));
  return [...points].sort((a, b) => b.length - a.length);
}

/** Unmounts everything under `dir` (a lazy unmount when a mount is busy); returns what is still mounted. */
export function unmountUnder(dir: string): string[] {
  for (let round = 0; round < 5; round++) {
    const points = mountsUnder(dir);
    if (points.length === 0) return [];
    for (const p of points) {
      if (spawnSync('umount', [p], { stdio: 'ignore' }).status !== 0) spawnSync('umount', ['-l', p], { stdio: 'ignore' });
    }
  }
  return mountsUnder(dir);
}

export function ip(args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function netnsExists(netns: string): boolean {
  return fs.existsSync(`/var/run/netns/${netns}`);
}

export function linkExists(name: string): boolean {
  return spawnSync('ip', ['link', 'show', name], { stdio: 'ignore' }).status === 0;
}

/** The second octets of the 10.x.0.0/16 networks this host already routes or addresses. */
export function usedTenOctets(): Set<number> {
  const out =
    spawnSync('ip', ['-4', 'route', 'show', 'table', 'all'], { encoding: 'utf8' }).stdout + spawnSync('ip', ['-4', 'addr'], { encoding: 'utf8' }).stdout;
  return new Set([...out.matchAll(/\b10\.(\d{1,3})\./g)].map((m) => Number(m[1])));
}
