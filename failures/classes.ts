/** Every class an attempt's failure can have, and which budget pays for each. */

/** Every class an attempt's failure can have; a spec's failureRules name one of them. */
export const FAILURE_CLASSES = [
  'bad-arguments',
  'missing-input',
  'communication',
  'out-of-memory',
  'nan-loss',
  'segfault',
  'killed',
  'hang',
  'node-lost',
  // Slurm's endings (executors/slurm/plan.ts): the job's time limit, and a preemption by a job of higher priority.
  'time-limit',
  'preempted',
  // Kubernetes refused the gang (executors/kubernetes/endings.ts): its image cannot be pulled, admission or a controller refused its pods.
  'rejected',
  'no-result',
  'exception',
  'unknown',
] as const;

export type FailureClass = (typeof FAILURE_CLASSES)[number];

export const NON_RETRYABLE: ReadonlySet<FailureClass> = new Set(['bad-arguments', 'missing-input', 'no-result', 'rejected']);

/** Faults of the machines, not of the job: they have a retry budget of their own. */
export const INFRASTRUCTURE: ReadonlySet<FailureClass> = new Set(['communication', 'node-lost', 'killed', 'hang', 'segfault', 'preempted']);

/** Which budget pays for a failure of this class. */
export function budgetOf(cls: FailureClass): 'infrastructure' | 'job' | 'none' {
  return NON_RETRYABLE.has(cls) ? 'none' : INFRASTRUCTURE.has(cls) ? 'infrastructure' : 'job';
}

/** What a user can do about a failure of each class. */
export const ADVICE: Record<FailureClass, string> = {
  'bad-arguments': "fix the stage's arguments (the check named in the deciding line); no retry can help",
  'missing-input': 'create or fix the path named in the deciding line, then run the pipeline again',
  communication: 'check the network between the nodes (HCCL_IF_IP / NCCL_SOCKET_IFNAME, ports, firewalls, `hccn_tool -i N -link -g`); linkflow retries',
  'out-of-memory': 'lower micro-batch-size or sequence length, add recompute or parallelism; linkflow retries from the last checkpoint',
  'nan-loss': 'lower the learning rate, check the data around that iteration; linkflow resumes from the last checkpoint',
  segfault: "a native crash: check the driver/CANN/torch_npu versions and the node's health; linkflow retries",
  killed: "something outside the job killed it (the host's OOM killer, an operator, the scheduler); check host memory (dmesg); linkflow retries",
  hang: "a rank stopped making progress and the others waited for it: look for the stuck rank's last lines; raise HCCL_EXEC_TIMEOUT only if a step is legitimately slow",
  'node-lost': 'the node or its worker went away; linkflow places the attempt again',
  'time-limit': "raise the Slurm job's time limit or save more often",
  preempted: 'a job of higher priority took the nodes; linkflow retries',
  rejected: "Kubernetes refused the gang (image pull, admission, a kind the cluster does not serve): fix what the API's message names; no retry can help",
  'no-result': 'the stage exited 0 without its output: read its log for a swallowed error',
  exception: "an error of the job's own code or data: read the traceback; linkflow retries it from the job's budget",
  unknown: 'read the log excerpt',
};
