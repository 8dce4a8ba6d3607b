/**
 * One trainer per save directory. Before an attempt launches, it takes the stage's lease: a small
 * file beside the checkpoints naming the attempt that may write them, renewed while it runs. A lease
 * renewed within the last heartbeat timeout belongs to a trainer that may still be writing (a worker
 * cut off from Temporal but not from the shared storage), so the new attempt waits for it to lapse.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pidAlive } from '../node/pid.ts';

export interface Lease {
  /** Fencing token: the workflow and attempt that own the save directory. */
  owner: string;
  host: string;
  pid: number;
  renewedAt: number;
  released?: boolean;
}

const LEASE_FILE = 'linkflow-lease.json';

/** A gang has one lease per node rank: each rank's trainer writes its own shards. */
export function leaseFile(nodeRank?: number): string {
  return nodeRank === undefined ? LEASE_FILE : `linkflow-lease.rank-${nodeRank}.json`;
}

export function readLease(dir: string, file = LEASE_FILE): Lease | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as Lease;
  } catch {
    return undefined;
  }
}

function write(dir: string, file: string, lease: Lease): void {
  const target = path.join(dir, file);
  const tmp = `${target}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(lease));
  fs.renameSync(tmp, target);
}

/** Whether another owner's lease still fences the directory. */
export function leaseHeld(lease: Lease | undefined, owner: string, ttlMs: number, now = Date.now()): boolean {
  if (!lease || lease.released || lease.owner === owner) return false;
  if (now - lease.renewedAt > ttlMs) return false;
  // On this host we can tell for sure whether the owner is gone.
  if (lease.host === os.hostname() && !pidAlive(lease.pid)) return false;
  return true;
}

export interface HeldLease {
  /** False when another attempt has taken the lease since: this trainer must stop writing. */
  renew(): boolean;
  release(): void;
}

/**
 * Waits (calling `whileWaiting`, e.g. to heartbeat) until no other owner holds the lease, then takes it.
 * Returns what the wait was about, for the attempt's log.
 */
export async function acquireLease(
  dir: string,
  owner: string,
  ttlMs: number,
  whileWaiting: (held: Lease) => void,
  file = LEASE_FILE,
): Promise<{ lease: HeldLease; waitedFor?: Lease }> {
  fs.mkdirSync(dir, { recursive: true });
  let waitedFor: Lease | undefined;
  for (;;) {
    const current = readLease(dir, file);
    if (!leaseHeld(current, owner, ttlMs)) break;
    waitedFor = current;
    whileWaiting(current!);
    await new Promise((r) => setTimeout(r, Math.min(1000, ttlMs / 4)));
  }
  const mine = (): Lease => ({ owner, host: os.hostname(), pid: process.pid, renewedAt: Date.now() });
  write(dir, file, mine());
  return {
    waitedFor,
    lease: {
      renew: () => {
        // The fencing token: renew only a lease that still names us.
        if (readLease(dir, file)?.owner !== owner) return false;
        write(dir, file, mine());
        return true;
      },
      release: () => {
        if (readLease(dir, file)?.owner === owner) write(dir, file, { ...mine(), released: true });
      },
    },
  };
}
