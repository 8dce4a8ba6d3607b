/**
 * Where a gang is, from what the API says of it (its pods' status, its nodes, its controller's
 * conditions and events), never from guesses: queued (with the scheduler's reason), running, or
 * ended, and an ending as linkflow's failure class with the API's own words.
 *
 * Why OOMKilled is `out-of-memory`: the container's memory cgroup (host memory, the pod's limit)
 * killed a rank, as Slurm's OUT_OF_MEMORY does; the class says memory ran out, the reason says which
 * memory, so the user raises the pod's memory (cluster.kubernetes.resources) rather than lowering
 * the micro-batch. It is not `killed` (which is an outside stop, retried on the infrastructure budget).
 */
import type { FailureClass } from '../../failures/failures.ts';

/** What the executor reads of one pod (the API's Pod, trimmed). */
export interface PodView {
  name: string;
  nodeRank?: number;
  nodeName?: string;
  phase: string;
  reason?: string;
  message?: string;
  deleting?: boolean;
  conditions: { type: string; status: string; reason?: string; message?: string }[];
  /** The rank's container: waiting or terminated. */
  waiting?: { reason?: string; message?: string };
  terminated?: { exitCode: number; signal?: number; reason?: string; message?: string; finishedAt?: string };
}

export interface GangView {
  /** How many pods the gang has when all exist. */
  expected: number;
  pods: PodView[];
  /** The nodes the pods were bound to, as the API has them now (absent: deleted). */
  nodes: Record<string, { ready: boolean } | undefined>;
  /** The controller's (Job, Volcano Job, AscendJob) conditions. */
  conditions: { type: string; status: string; reason?: string; message?: string }[];
  /** Warning events of the gang's objects, newest last. */
  events: { object: string; reason: string; message: string }[];
  /** The gang's controller object is gone (deleted from outside, or by us). */
  gone?: boolean;
}

export type GangEnding =
  | { kind: 'exit'; exitCode: number | null; signal: NodeJS.Signals | null; pod?: string; node?: string }
  | { kind: 'class'; class: FailureClass; reason: string; retryable: boolean; node?: string };

export type GangPhase = { phase: 'queued'; note: string } | { phase: 'running'; nodes: string[] } | { phase: 'ended'; ending: GangEnding; nodes: string[] };

/** Container waiting reasons that no retry fixes: the image cannot be had, the container cannot be made. */
const REJECTED_WAITING = new Set([
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'ErrImageNeverPull',
  'CreateContainerConfigError',
  'CreateContainerError',
]);
/** Events of a controller that could not make the gang's pods (quota, admission webhooks, pod security). */
const REJECTED_EVENTS = new Set(['FailedCreate', 'FailedCreatePodSandBox']);

const SIGNALS: Record<number, NodeJS.Signals> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM' };

export function gangPhase(view: GangView): GangPhase {
  const nodes = [...new Set(view.pods.map((p) => p.nodeName).filter((n): n is string => !!n))];
  const ended = (ending: GangEnding): GangPhase => ({ phase: 'ended', ending, nodes });
  const rejected = rejection(view);
  if (rejected) return ended(rejected);
  const infrastructure = infrastructureEnding(view);
  if (infrastructure) return ended(infrastructure);
  const failed = firstFailure(view.pods);
  if (failed) return ended(failed);
  const succeeded = view.pods.filter((p) => p.phase === 'Succeeded').length;
  if (succeeded >= view.expected) return ended({ kind: 'exit', exitCode: 0, signal: null });
  if (view.gone) return ended({ kind: 'class', class: 'killed', reason: 'the gang was deleted from outside linkflow', retryable: true });
  const pending = view.pods.filter((p) => p.phase === 'Pending' && !p.nodeName);
  if (view.pods.length < view.expected || pending.length > 0) return { phase: 'queued', note: queuedNote(view, pending) };
  return { phase: 'running', nodes };
}

function rejection(view: GangView): GangEnding | undefined {
  for (const p of view.pods) {
    if (p.waiting?.reason && REJECTED_WAITING.has(p.waiting.reason))
      return {
        kind: 'class',
        class: 'rejected',
        reason: `pod ${p.name}: ${p.waiting.reason}${p.waiting.message ? `: ${p.waiting.message}` : ''}`,
        retryable: false,
        node: p.nodeName,
      };
  }
  const event = view.events.find((e) => REJECTED_EVENTS.has(e.reason) && e.reason === 'FailedCreate');
  if (event && view.pods.length < view.expected)
    return { kind: 'class', class: 'rejected', reason: `${event.object}: ${event.reason}: ${event.message}`, retryable: false };
  return undefined;
}

/** The cluster ended the gang: a node lost, a preemption or eviction, a deadline, the memory cgroup. */
function infrastructureEnding(view: GangView): GangEnding | undefined {
  for (const p of view.pods) {
    if (p.phase === 'Succeeded') continue;
    const node = p.nodeName;
    const disruption = p.conditions.find((c) => c.type === 'DisruptionTarget' && c.status === 'True');
    const dr = disruption?.reason;
    if (node && (view.nodes[node] === undefined || view.nodes[node]?.ready === false) && p.phase !== 'Failed') {
      return {
        kind: 'class',
        class: 'node-lost',
        reason: `node ${node} ${view.nodes[node] === undefined ? 'was deleted' : 'is NotReady'} under pod ${p.name}${p.nodeRank !== undefined ? ` (node rank ${p.nodeRank})` : ''}`,
        retryable: true,
        node,
      };
    }
    if (dr === 'DeletionByTaintManager' || dr === 'DeletionByPodGC' || p.reason === 'NodeLost')
      return {
        kind: 'class',
        class: 'node-lost',
        reason: `pod ${p.name} on node ${node ?? '?'}: ${dr ?? p.reason}: ${disruption?.message ?? p.message ?? ''}`.trim(),
        retryable: true,
        node,
      };
    if (dr === 'PreemptionByScheduler' || dr === 'PreemptionByKubeScheduler' || p.reason === 'Preempted' || p.reason === 'Preempting')
      return {
        kind: 'class',
        class: 'preempted',
        reason: `pod ${p.name} was preempted by the scheduler: ${disruption?.message ?? p.message ?? ''}`.trim(),
        retryable: true,
      };
    if (dr === 'EvictionByEvictionAPI' || dr === 'TerminationByKubelet' || p.reason === 'Evicted')
      return {
        kind: 'class',
        class: 'preempted',
        reason: `pod ${p.name} was evicted from node ${node ?? '?'}: ${disruption?.message ?? p.message ?? dr ?? ''}`.trim(),
        retryable: true,
        node,
      };
    if (p.reason === 'DeadlineExceeded')
      return { kind: 'class', class: 'time-limit', reason: `pod ${p.name} reached its deadline (DeadlineExceeded)`, retryable: true };
    if (p.terminated?.reason === 'OOMKilled')
      return {
        kind: 'class',
        class: 'out-of-memory',
        reason: `pod ${p.name} on node ${node ?? '?'} was OOMKilled: the container ran out of host memory (its memory limit); raise cluster.kubernetes.resources.memory`,
        retryable: true,
        node,
      };
  }
  const deadline = view.conditions.find((c) => c.status === 'True' && c.reason === 'DeadlineExceeded');
  if (deadline)
    return {
      kind: 'class',
      class: 'time-limit',
      reason: `the gang reached its deadline (DeadlineExceeded): ${deadline.message ?? ''}`.trim(),
      retryable: true,
    };
  return undefined;
}

/** The first rank that failed on its own (the root cause; the others' endings echo it). */
function firstFailure(pods: PodView[]): GangEnding | undefined {
  const failed = pods
    .filter((p) => p.phase === 'Failed' && p.terminated)
    .sort((a, b) => (a.terminated!.finishedAt ?? '').localeCompare(b.terminated!.finishedAt ?? ''));
  const first = failed[0];
  if (!first) return undefined;
  const t = first.terminated!;
  // A container killed by a signal exits 128 + the signal (the runtime's convention).
  const signal = t.signal ? SIGNALS[t.signal] : t.exitCode > 128 ? SIGNALS[t.exitCode - 128] : undefined;
  return { kind: 'exit', exitCode: signal ? null : t.exitCode, signal: signal ?? null, pod: first.name, node: first.nodeName };
}

/** What `linkflow status` says while the gang waits: the scheduler's own reason. */
function queuedNote(view: GangView, pending: PodView[]): string {
  const unschedulable = pending.map((p) => p.conditions.find((c) => c.type === 'PodScheduled' && c.status === 'False')).find((c) => c?.message);
  if (unschedulable) return `Kubernetes: ${pending.length} of ${view.expected} pods unschedulable (${unschedulable.reason}): ${unschedulable.message}`;
  const event = [...view.events].reverse().find((e) => e.reason === 'FailedScheduling' || e.reason === 'Unschedulable' || e.reason.startsWith('PodGroup'));
  if (event) return `Kubernetes: waiting to be scheduled (${event.reason}): ${event.message}`;
  if (view.pods.length < view.expected) return `Kubernetes: ${view.pods.length} of ${view.expected} pods created`;
  return `Kubernetes: ${pending.length} of ${view.expected} pods pending`;
}

/** A pod's API object as the executor reads it. */
export function podView(
  pod: {
    metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string>; deletionTimestamp?: string };
    spec?: { nodeName?: string };
    status?: {
      phase?: string;
      reason?: string;
      message?: string;
      conditions?: { type: string; status: string; reason?: string; message?: string }[];
      containerStatuses?: {
        name: string;
        state?: {
          waiting?: { reason?: string; message?: string };
          terminated?: { exitCode: number; signal?: number; reason?: string; message?: string; finishedAt?: string };
        };
      }[];
    };
  },
  nodeRankLabel: string,
  indexAnnotation = 'batch.kubernetes.io/job-completion-index',
): PodView {
  const state = pod.status?.containerStatuses?.[0]?.state;
  const rank = pod.metadata.labels?.[nodeRankLabel] ?? pod.metadata.annotations?.[indexAnnotation];
  return {
    name: pod.metadata.name,
    nodeRank: rank !== undefined && /^\d+$/.test(rank) ? Number(rank) : undefined,
    nodeName: pod.spec?.nodeName,
    phase: pod.status?.phase ?? 'Pending',
    reason: pod.status?.reason,
    message: pod.status?.message,
    deleting: pod.metadata.deletionTimestamp !== undefined,
    conditions: pod.status?.conditions ?? [],
    waiting: state?.waiting,
    terminated: state?.terminated,
  };
}
