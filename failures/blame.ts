/**
 * When a failed attempt counts against the machine it ran on. Only when the class is a fault of the
 * machine AND the evidence points at that node: a rank's own Python error, a peer's echo (HCCL errors
 * printed because another rank died), a hang (a job can deadlock itself), the host's OOM killer (the
 * job's own memory) and a bare exit status say nothing about the machine.
 */
import type { FailureClass } from './classes.ts';
import type { Evidence } from './failures.ts';

/** The evidence, per class, that points at the node the attempt (or its failed rank) ran on. */
const MACHINE_EVIDENCE: Partial<Record<FailureClass, ReadonlySet<Evidence | 'executor'>>> = {
  // The link from this node could not be built (its NIC, its port, its HCCN config), or the pipeline's own rule said so.
  // Not `rendezvous`: a node that timed out waiting for a peer (a store, `1/2 clients joined`) waited for another's fault.
  communication: new Set(['network', 'cause']),
  // A native crash of this node's process, seen in its log or by its launcher.
  segfault: new Set(['cause', 'signal', 'status']),
  // The executor lost the worker or the machine (heartbeats stopped, Slurm's NODE_FAIL).
  'node-lost': new Set(['executor', 'status', 'watcher', 'cause', 'network']),
};

export interface BlameInput {
  failureClass?: FailureClass;
  /** How the class was established; undefined for failures the executor itself reports (a lost heartbeat). */
  evidence?: Evidence;
}

/** Whether this failure counts toward the node's quarantine. */
export function blameWorthy(f: BlameInput): boolean {
  if (!f.failureClass) return false;
  return MACHINE_EVIDENCE[f.failureClass]?.has(f.evidence ?? 'executor') ?? false;
}
