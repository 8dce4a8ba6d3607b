/**
 * The Kubernetes executor, pure part: an attempt as one gang of pods. Names and labels (how a later
 * attempt finds a gang still running), the rank's command and what each flavour gives a rank. The
 * objects themselves are in manifests.ts, what the API says of an ending in endings.ts; the I/O
 * (submit, follow, stop, adopt) is in io/.
 *
 * Nothing of the spec reaches a shell. A rank runs a constant bash script (RANK_SCRIPT) whose
 * arguments ("$@") are the launch's argv; the script only sources the setup script named in an
 * environment variable, fills in the rendezvous and runs the argv as its child, passing the kubelet's
 * SIGTERM to torchrun's workers (not to its elastic agent).
 */
import type { z } from 'zod';
import type { Launch } from '../../frameworks/launch.ts';
import { shortHash } from '../executor.ts';
import type { kubernetesSchema } from '../../spec/kubernetes.ts';

type Spec = z.output<typeof kubernetesSchema>;

/** `cluster.kubernetes` as the plan carries it: the devices per node resolved. */
export { shortHash };

export type KubernetesSettings = Omit<Spec, 'devices'> & { devices: { resource: string; perNode: number } };
export type Flavour = KubernetesSettings['flavour'];

/** Labels every object of a gang carries: a later attempt finds the stage's gang by them. */
export const LABEL = {
  managedBy: 'app.kubernetes.io/managed-by',
  pipeline: 'linkflow.dev/pipeline',
  stage: 'linkflow.dev/stage',
  attempt: 'linkflow.dev/attempt',
  gang: 'linkflow.dev/gang',
  nodeRank: 'linkflow.dev/node-rank',
} as const;
/** The full names (labels hold at most 63 characters of a restricted alphabet). */
export const ANNOTATION = { pipeline: 'linkflow.dev/pipeline', stage: 'linkflow.dev/stage', fingerprint: 'linkflow.dev/fingerprint' } as const;

/** The one container of a rank: AscendJob requires this name (MindCluster ascend-operator, ascendjob_types.go). */
export const CONTAINER = 'ascend';
/** AscendJob's rendezvous port name (MindCluster ascend-operator constants.go: ascendjob-port, default 2222). */
export const ASCENDJOB_PORT = 'ascendjob-port';

/** A string as a DNS-1123 label part: lower case, [a-z0-9-], at most `max` characters, a short hash when shortened or changed. */
export function dnsPart(s: string, max: number): string {
  const clean = s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  if (clean === s && clean.length <= max && clean.length > 0) return clean;
  const hash = shortHash(s);
  return `${clean.slice(0, Math.max(0, max - hash.length - 1)).replace(/-+$/, '')}-${hash}`.replace(/^-/, '');
}

/**
 * A gang's name: "lf-<pipeline>-<stage>-a<attempt>", short enough that an indexed Job's pod
 * hostnames (name-<index>) and AscendJob's and Volcano's pod names (name-<replica>-<index>) stay
 * DNS labels of at most 63 characters.
 */
export function gangName(pipeline: string, stage: string, attempt: number): string {
  return `lf-${dnsPart(pipeline, 18)}-${dnsPart(stage, 18)}-a${attempt}`;
}

/** The selector of every gang of one stage, whatever its attempt. */
export function stageSelector(pipeline: string, stage: string): string {
  return `${LABEL.managedBy}=linkflow,${LABEL.pipeline}=${dnsPart(pipeline, 63)},${LABEL.stage}=${dnsPart(stage, 63)}`;
}

export function gangLabels(pipeline: string, stage: string, attempt: number): Record<string, string> {
  return {
    [LABEL.managedBy]: 'linkflow',
    [LABEL.pipeline]: dnsPart(pipeline, 63),
    [LABEL.stage]: dnsPart(stage, 63),
    [LABEL.attempt]: String(attempt),
    [LABEL.gang]: gangName(pipeline, stage, attempt),
  };
}

/** Placeholders the rank's script replaces in argv elements that are exactly these. */
export const MASTER_ADDR_PLACEHOLDER = '@LINKFLOW_MASTER_ADDR@';

/**
 * The rank's constant bash script. The setup script's path arrives in LINKFLOW_SETUP_SCRIPT and is
 * sourced as on node workers and Slurm (set -a, exit 97 when it fails: node/setup-env.ts); with
 * LINKFLOW_RENDEZVOUS (the pods flavour, which needs no cluster DNS) node rank 0 writes its pod IP
 * into that file on the shared volume and every rank waits for it; the argv element
 * @LINKFLOW_MASTER_ADDR@ becomes that address.
 *
 * The launch runs as the script's child, not by exec: the kubelet's SIGTERM reaches this shell,
 * which, with LINKFLOW_STOP_WORKERS (an elastic agent launch), sends it to the launcher's child
 * processes (the workers) rather than to torchrun, whose elastic agent would SIGKILL them 30 s later
 * whatever the grace (torch/distributed/elastic/agent/server/api.py _shutdown → multiprocessing/api.py
 * close(timeout=30)) and cut a longer checkpoint save; as executors/nodes/io/supervisor.mjs does.
 * The workers save and exit, the agent ends as they did, and the script exits with its status.
 */
export const RANK_SCRIPT = [
  '# linkflow: constant text; everything of the stage arrives as arguments and environment (executors/kubernetes/plan.ts).',
  'set -e',
  'launcher=',
  'stop() {',
  '  stopping=1',
  '  [ -n "$launcher" ] || exit 143',
  '  targets=',
  '  if [ -n "${LINKFLOW_STOP_WORKERS:-}" ]; then',
  '    for f in /proc/[0-9]*/stat; do',
  '      read -r st < "$f" 2>/dev/null || continue',
  '      st=${st##*) }; st=${st#* }',
  '      if [ "${st%% *}" = "$launcher" ]; then p=${f#/proc/}; targets="$targets ${p%/stat}"; fi',
  '    done',
  '  fi',
  '  if [ -n "$targets" ]; then',
  '    echo "linkflow: stopping; SIGTERM to the launcher\'s worker processes$targets" >&2; kill -TERM $targets 2>/dev/null',
  '  else',
  '    echo "linkflow: stopping; SIGTERM to the launcher ($launcher)" >&2; kill -TERM "$launcher" 2>/dev/null',
  '  fi',
  '}',
  "# Before the launch too: bash as the container's PID 1 would otherwise ignore SIGTERM.",
  'trap stop TERM',
  'if [ -n "${LINKFLOW_SETUP_SCRIPT:-}" ]; then',
  '  set -a; . "$LINKFLOW_SETUP_SCRIPT" || { echo "linkflow: setup script $LINKFLOW_SETUP_SCRIPT failed" >&2; exit 97; }; set +a',
  'fi',
  'if [ -n "${LINKFLOW_RENDEZVOUS:-}" ]; then',
  '  if [ "$LINKFLOW_NODE_RANK" = 0 ]; then printf "%s\\n" "$LINKFLOW_POD_IP" > "$LINKFLOW_RENDEZVOUS.$LINKFLOW_POD_IP"; mv "$LINKFLOW_RENDEZVOUS.$LINKFLOW_POD_IP" "$LINKFLOW_RENDEZVOUS"; fi',
  '  while [ ! -s "$LINKFLOW_RENDEZVOUS" ]; do sleep 0.2; done',
  '  addr=$(cat "$LINKFLOW_RENDEZVOUS")',
  '  n=$#; i=0',
  '  while [ "$i" -lt "$n" ]; do a=$1; shift; if [ "$a" = "@LINKFLOW_MASTER_ADDR@" ]; then a=$addr; fi; set -- "$@" "$a"; i=$((i + 1)); done',
  'fi',
  'set +e',
  '"$@" &',
  'launcher=$!',
  'while :; do',
  '  stopping=',
  '  wait "$launcher"; status=$?',
  '  if [ -z "$stopping" ] || [ "$status" -le 128 ]; then break; fi',
  'done',
  'exit "$status"',
].join('\n');

/**
 * The launch as every rank of a flavour runs it. torchrun's options come from the flavour's own
 * variables, expanded by the kubelet ($(VAR) in args): the pods flavour's node rank is the Job's
 * completion index; AscendJob's RANK is the pod's node rank (Master 0, Workers 1..n), its MASTER_ADDR
 * and MASTER_PORT the Master's Service (MindCluster ascend-operator pkg/controllers/v1/env.go);
 * Volcano's pytorch plugin sets the same three. nnodes and nproc_per_node are the plan's.
 */
export function rankLaunch(launch: Launch, flavour: Flavour): Launch {
  if (launch.kind !== 'torchrun') return launch;
  if (flavour === 'pods') return { ...launch, nodeRank: '$(LINKFLOW_NODE_RANK)', masterAddr: MASTER_ADDR_PLACEHOLDER };
  return { ...launch, nodeRank: '$(RANK)', masterAddr: '$(MASTER_ADDR)', masterPort: '$(MASTER_PORT)' };
}

/**
 * The kubelet expands $(VAR) in a container's args; a spec's own "$(" must stay literal ("$$(" is
 * the API's escape). Only the launch's own placeholders are left to expand.
 */
export function escapeArgs(argv: string[], keep: ReadonlySet<string>): string[] {
  return argv.map((a) => (keep.has(a) ? a : a.replaceAll('$(', () => '$$(')));
}

/** The placeholders of a rank launch (kept unescaped). */
export const RANK_PLACEHOLDERS: ReadonlySet<string> = new Set(['$(LINKFLOW_NODE_RANK)', '$(RANK)', '$(MASTER_ADDR)', '$(MASTER_PORT)']);
