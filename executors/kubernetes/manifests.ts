/**
 * An attempt's gang as Kubernetes objects, one list per flavour, in the order they are created:
 * - pods: a headless Service (stable hostnames), a PodGroup of Kubernetes' own gang scheduling
 *   (scheduling.k8s.io/v1beta1, where the cluster serves it) and an indexed Job of one pod per node;
 * - volcano: a Volcano Job (batch.volcano.sh/v1alpha1) with minAvailable = the nodes, its queue,
 *   and the svc and pytorch plugins (hostnames; MASTER_ADDR, MASTER_PORT, RANK);
 * - ascendjob: MindCluster's AscendJob (mindxdl.gitee.com/v1): Master and Worker replicas, the
 *   container `ascend` with its port `ascendjob-port`, its fault-scheduling labels.
 * Secrets never appear here: a rank takes them from the attempt's Secret by name (envFrom).
 * Plain data in, plain objects out: `linkflow render` prints them, the I/O part creates them.
 */
import type { Launch } from '../../frameworks/launch.ts';
import { launchesElasticAgent, renderLaunch } from '../../frameworks/launch.ts';
import {
  ANNOTATION,
  ASCENDJOB_PORT,
  CONTAINER,
  escapeArgs,
  gangLabels,
  gangName,
  LABEL,
  RANK_PLACEHOLDERS,
  RANK_SCRIPT,
  rankLaunch,
  type KubernetesSettings,
} from './plan.ts';

export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
} & Record<string, unknown>;

export interface GangInput {
  settings: KubernetesSettings;
  pipeline: string;
  stage: string;
  attempt: number;
  launch: Launch;
  /** The entrypoint and its arguments, after the launch. */
  command: string[];
  cwd: string;
  /** The stage's environment (no secrets). */
  env: Record<string, string>;
  setupScript?: string;
  /** The attempt's Secret, when the stage has secrets: every rank takes its keys as variables. */
  secretName?: string;
  /** The stop grace: the kubelet's SIGTERM, then SIGKILL after it. */
  stopGraceSeconds: number;
  /** Nodes earlier attempts lost (node-lost): left out through node affinity. */
  avoidNodes?: string[];
  /** The stage runs on the devices (torchrun); preprocessing and conversion ask for none. */
  usesDevices: boolean;
  /** pods flavour: the cluster serves scheduling.k8s.io/v1beta1 PodGroup (Kubernetes' gang scheduling). */
  podGroups: boolean;
  /** pods flavour: the file on the shared volume where node rank 0 publishes its address. */
  rendezvousFile?: string;
  /** What identifies the stage's work (its plan): a later attempt adopts a running gang only when it matches. */
  fingerprint: string;
}

/** The pod spec fields linkflow sets: `cluster.kubernetes.pod` may not set them again. */
export const MANAGED_POD_FIELDS = [
  'containers',
  'initContainers',
  'restartPolicy',
  'volumes',
  'terminationGracePeriodSeconds',
  'affinity',
  'nodeSelector',
  'tolerations',
  'serviceAccountName',
  'priorityClassName',
  'schedulingGroup',
  'subdomain',
  'hostname',
  'schedulerName',
];

/** The gang's objects, in creation order. */
export function gangManifests(g: GangInput): KubeObject[] {
  const name = gangName(g.pipeline, g.stage, g.attempt);
  const nodes = g.launch.kind === 'torchrun' ? g.launch.nnodes : 1;
  switch (g.settings.flavour) {
    case 'pods':
      return podsFlavour(g, name, nodes);
    case 'volcano':
      return [volcanoJob(g, name, nodes)];
    case 'ascendjob':
      return [ascendJob(g, name, nodes)];
  }
}

function metadata(g: GangInput, name: string, extraLabels: Record<string, string> = {}): KubeObject['metadata'] {
  return {
    name,
    namespace: g.settings.namespace,
    labels: { ...g.settings.labels, ...extraLabels, ...gangLabels(g.pipeline, g.stage, g.attempt) },
    annotations: { ...g.settings.annotations, [ANNOTATION.pipeline]: g.pipeline, [ANNOTATION.stage]: g.stage, [ANNOTATION.fingerprint]: g.fingerprint },
  };
}

/** The rank's container: the constant script, the launch's argv, the stage's environment. */
function container(g: GangInput, extraEnv: object[] = [], ports: object[] = []): Record<string, unknown> {
  const launch = rankLaunch(g.launch, g.settings.flavour);
  const argv = escapeArgs([...renderLaunch(launch), ...g.command], RANK_PLACEHOLDERS);
  const devices = g.usesDevices ? { [g.settings.devices.resource]: String(g.settings.devices.perNode) } : {};
  const more = Object.fromEntries(Object.entries(g.settings.resources ?? {}).map(([k, v]) => [k, String(v)]));
  const resources = { ...more, ...devices };
  return {
    name: CONTAINER,
    image: g.settings.image,
    ...(g.settings.imagePullPolicy ? { imagePullPolicy: g.settings.imagePullPolicy } : {}),
    command: ['/bin/bash', '-c', RANK_SCRIPT, 'linkflow-rank'],
    args: argv,
    workingDir: g.cwd,
    env: [
      ...extraEnv,
      ...Object.entries(g.env).map(([name, value]) => ({ name, value: value.replaceAll('$(', () => '$$(') })),
      ...(g.setupScript ? [{ name: 'LINKFLOW_SETUP_SCRIPT', value: g.setupScript }] : []),
      ...(launchesElasticAgent(g.launch) ? [{ name: 'LINKFLOW_STOP_WORKERS', value: '1' }] : []),
    ],
    ...(g.secretName ? { envFrom: [{ secretRef: { name: g.secretName } }] } : {}),
    ...(Object.keys(resources).length ? { resources: { requests: resources, limits: resources } } : {}),
    ...(ports.length ? { ports } : {}),
    volumeMounts: g.settings.volumes.map((v, i) => ({
      name: `workspace-${i}`,
      mountPath: v.mountPath ?? ('hostPath' in v ? v.hostPath : '/'),
      readOnly: v.readOnly,
    })),
  };
}

/** The pod spec every rank shares; `extra` are the flavour's own fields. */
function podSpec(g: GangInput, c: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const s = g.settings;
  const avoid = [...new Set(g.avoidNodes ?? [])];
  return {
    ...s.pod,
    ...extra,
    restartPolicy: 'Never',
    // A stop: the kubelet sends SIGTERM to the launcher (the container's first process), SIGKILL after the grace.
    terminationGracePeriodSeconds: g.stopGraceSeconds,
    containers: [c],
    volumes: s.volumes.map((v, i) =>
      'hostPath' in v
        ? { name: `workspace-${i}`, hostPath: { path: v.hostPath, type: 'Directory' } }
        : { name: `workspace-${i}`, persistentVolumeClaim: { claimName: v.claim } },
    ),
    ...(s.nodeSelector ? { nodeSelector: s.nodeSelector } : {}),
    ...(s.tolerations ? { tolerations: s.tolerations } : {}),
    ...(s.serviceAccount ? { serviceAccountName: s.serviceAccount } : {}),
    ...(s.priorityClass ? { priorityClassName: s.priorityClass } : {}),
    ...(avoid.length
      ? {
          affinity: {
            nodeAffinity: {
              requiredDuringSchedulingIgnoredDuringExecution: {
                nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'NotIn', values: avoid }] }],
              },
            },
          },
        }
      : {}),
  };
}

function podsFlavour(g: GangInput, name: string, nodes: number): KubeObject[] {
  const labels = gangLabels(g.pipeline, g.stage, g.attempt);
  const service: KubeObject = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(g, name),
    spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector: { [LABEL.gang]: labels[LABEL.gang] } },
  };
  const gang = g.podGroups && nodes > 1;
  const podGroup: KubeObject = {
    apiVersion: 'scheduling.k8s.io/v1beta1',
    kind: 'PodGroup',
    metadata: metadata(g, name),
    // All or nothing: no rank starts (and holds its NPUs) until every rank has a place.
    spec: { schedulingPolicy: { gang: { minCount: nodes } } },
  };
  const env = [
    { name: 'LINKFLOW_NODE_RANK', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } },
    { name: 'LINKFLOW_POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    ...(g.rendezvousFile && g.launch.kind === 'torchrun' ? [{ name: 'LINKFLOW_RENDEZVOUS', value: g.rendezvousFile }] : []),
  ];
  const job: KubeObject = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: metadata(g, name),
    spec: {
      completionMode: 'Indexed',
      completions: nodes,
      parallelism: nodes,
      // linkflow retries the whole gang from the newest checkpoint; a rank is never restarted alone.
      backoffLimit: 0,
      podFailurePolicy: { rules: [{ action: 'FailJob', onPodConditions: [{ type: 'DisruptionTarget' }] }] },
      template: {
        metadata: { labels: { ...g.settings.labels, ...labels }, annotations: { ...g.settings.annotations } },
        spec: podSpec(g, container(g, env), { subdomain: name, ...(gang ? { schedulingGroup: { podGroupName: name } } : {}) }),
      },
    },
  };
  return gang ? [service, podGroup, job] : [service, job];
}

function volcanoJob(g: GangInput, name: string, nodes: number): KubeObject {
  const labels = gangLabels(g.pipeline, g.stage, g.attempt);
  const task = (taskName: string, replicas: number) => ({
    name: taskName,
    replicas,
    template: {
      metadata: { labels: { ...g.settings.labels, ...labels }, annotations: { ...g.settings.annotations } },
      spec: podSpec(g, container(g)),
    },
  });
  return {
    apiVersion: 'batch.volcano.sh/v1alpha1',
    kind: 'Job',
    metadata: metadata(g, name),
    spec: {
      schedulerName: 'volcano',
      minAvailable: nodes,
      queue: g.settings.queue ?? 'default',
      maxRetry: 0,
      ...(g.settings.priorityClass ? { priorityClassName: g.settings.priorityClass } : {}),
      // svc: hostnames and a headless Service; pytorch: MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK (the pod's index).
      plugins: { svc: [], pytorch: ['--master=master', '--worker=worker', `--port=${g.launch.kind === 'torchrun' ? g.launch.masterPort : 23456}`] },
      policies: [{ event: 'PodEvicted', action: 'AbortJob' }],
      tasks: nodes > 1 ? [task('master', 1), task('worker', nodes - 1)] : [task('master', 1)],
    },
  };
}

function ascendJob(g: GangInput, name: string, nodes: number): KubeObject {
  const labels = gangLabels(g.pipeline, g.stage, g.attempt);
  const s = g.settings;
  // MindCluster's labels (ascend-for-volcano internal/rescheduling/type.go): off leaves recovery to linkflow's attempts.
  const fault = {
    ...(s.faultScheduling !== 'off' ? { 'fault-scheduling': s.faultScheduling } : {}),
    ...(s.faultRetryTimes ? { 'fault-retry-times': String(s.faultRetryTimes) } : {}),
  };
  const port = g.launch.kind === 'torchrun' && typeof g.launch.masterPort === 'number' ? g.launch.masterPort : 2222;
  const replica = (replicas: number) => ({
    replicas,
    restartPolicy: 'Never',
    template: {
      metadata: { labels: { ...s.labels, ...labels, ...fault }, annotations: { ...s.annotations } },
      spec: podSpec(g, container(g, [], [{ name: ASCENDJOB_PORT, containerPort: port }])),
    },
  });
  return {
    apiVersion: 'mindxdl.gitee.com/v1',
    kind: 'AscendJob',
    metadata: metadata(g, name, { framework: 'pytorch', ...fault }),
    spec: {
      schedulerName: 'volcano',
      runPolicy: {
        backoffLimit: 0,
        schedulingPolicy: { minAvailable: nodes, queue: s.queue ?? 'default', ...(s.priorityClass ? { priorityClass: s.priorityClass } : {}) },
      },
      successPolicy: 'AllWorkers',
      replicaSpecs: nodes > 1 ? { Master: replica(1), Worker: replica(nodes - 1) } : { Master: replica(1) },
    },
  };
}
