/** The Kubernetes executor's pure part (executors/kubernetes/): its spec, the gang's manifests per flavour, endings from the API. No cluster needed. */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { gangPhase, podView, type GangView, type PodView } from '../executors/kubernetes/endings.ts';
import { gangManifests, type GangInput, type KubeObject } from '../executors/kubernetes/manifests.ts';
import { dnsPart, gangName, rankLaunch, RANK_SCRIPT, stageSelector, type KubernetesSettings } from '../executors/kubernetes/plan.ts';
import { launchOf, renderLaunch, torchrunLaunch } from '../frameworks/launch.ts';
import { planPipeline } from '../plan/plan.ts';
import { checkOffline } from '../executors/kubernetes/io/schemas.ts';
import { plannedGangObjects } from '../cli/render.ts';
import { fiveStageSpec, type RawSpec } from '../testkit/specs.ts';

function k8sSpec(kubernetes: Record<string, unknown>, cluster: Record<string, unknown> = {}): RawSpec {
  const spec = fiveStageSpec('p', '/tmp/ws');
  spec.cluster = {
    executor: 'kubernetes',
    nodes: 2,
    devicesPerNode: 8,
    kubernetes: { image: 'mindspeed:1', volumes: [{ hostPath: '/tmp/ws' }], ...kubernetes },
    ...cluster,
  };
  spec.parallel = { tp: 1, pp: 2 };
  return spec;
}

function problemsOf(raw: unknown): string[] {
  const r = planPipeline(raw, { baseDir: '/tmp' });
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

const settings = (over: Partial<KubernetesSettings> = {}): KubernetesSettings => ({
  namespace: 'train',
  image: 'mindspeed:1',
  flavour: 'pods',
  devices: { resource: 'huawei.com/Ascend910', perNode: 8 },
  gangScheduling: 'auto',
  faultScheduling: 'off',
  volumes: [{ hostPath: '/shared' }],
  ...over,
});

const launch = torchrunLaunch(['torchrun'], { nprocPerNode: 8, nnodes: 2, nodeRank: 0, masterAddr: 'localhost', masterPort: 6000 });

const gang = (over: Partial<GangInput> = {}): GangInput => ({
  settings: settings(),
  pipeline: 'llama2-7b',
  stage: 'pretrain',
  attempt: 3,
  launch,
  command: ['pretrain_gpt.py', '--train-iters', '100', '--data-path', '/shared/$(HOME)/data'],
  cwd: '/shared/ModelLink',
  env: { HCCL_CONNECT_TIMEOUT: '1200' },
  stopGraceSeconds: 45,
  usesDevices: true,
  podGroups: true,
  rendezvousFile: '/shared/logs/attempt-3.k8s/rendezvous',
  fingerprint: 'abc',
  ...over,
});

type Pod = { spec: { containers: Record<string, unknown>[]; [k: string]: unknown }; metadata: { labels: Record<string, string> } };
const template = (o: KubeObject): Pod => (o.spec as { template: Pod }).template;

describe('the Kubernetes spec', () => {
  it('carries the settings into every stage plan, devices per pod defaulting to the devices per node', () => {
    const r = planPipeline(k8sSpec({ namespace: 'llm', nodeSelector: { accelerator: 'ascend-910b' } }), { baseDir: '/tmp' });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.plan.stages.every((s) => s.kubernetes?.namespace === 'llm')).toBe(true);
    expect(r.plan.stages[0].kubernetes).toMatchObject({
      flavour: 'pods',
      devices: { resource: 'huawei.com/Ascend910', perNode: 8 },
      nodeSelector: { accelerator: 'ascend-910b' },
    });
    expect(r.plan.stages.every((s) => s.slurm === undefined)).toBe(true);
  });

  it('reports each problem with its path', () => {
    expect(problemsOf(k8sSpec({ namespace: 'Bad_NS', volumes: [] }))).toEqual([
      'cluster.kubernetes.namespace: expected a lower-case name such as "training" (letters, digits, "-")',
      'cluster.kubernetes.volumes: expected the shared volume that holds the workspace (hostPath or claim)',
    ]);
    expect(problemsOf(k8sSpec({ devices: { perNode: 4 }, pod: { containers: [] }, queue: 'q' }, { hosts: ['a', 'b'] }))).toEqual([
      'cluster.hosts: Kubernetes places the pods itself; use cluster.kubernetes.nodeSelector instead of hosts',
      'cluster.kubernetes.devices.perNode: asks for 4 devices per pod, but each pod runs 8 processes (cluster.devicesPerNode); ask for at least 8',
      'cluster.kubernetes.pod.containers: containers is set by linkflow for every gang; use the cluster.kubernetes field for it or remove it',
      'cluster.kubernetes.queue: a queue is Volcano’s: use flavour volcano or ascendjob, or remove it',
    ]);
    const spec = fiveStageSpec('p', '/tmp/ws');
    spec.cluster = { executor: 'kubernetes' };
    expect(problemsOf(spec)).toEqual(['cluster.kubernetes: expected the Kubernetes settings (at least image and volumes) for executor: kubernetes']);
    expect(problemsOf(k8sSpec({ flavour: 'kubeflow' }))[0]).toMatch(/^cluster\.kubernetes\.flavour: /);
  });
});

describe('names and labels', () => {
  it('keeps gang names DNS labels short enough for the pods of every flavour', () => {
    const long = gangName('a-pipeline-with-a-very-long-name-indeed', 'Stage_With.Capitals', 12);
    expect(long).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(long.length + '-worker-99'.length).toBeLessThanOrEqual(63);
    expect(gangName('p', 'pretrain', 1)).toBe('lf-p-pretrain-a1');
    // Two names that clean to the same text still differ.
    expect(dnsPart('Stage_A', 18)).not.toBe(dnsPart('stage-a', 18));
    expect(stageSelector('p', 'pretrain')).toBe('app.kubernetes.io/managed-by=linkflow,linkflow.dev/pipeline=p,linkflow.dev/stage=pretrain');
  });
});

describe('the gang of the pods flavour', () => {
  const objects = gangManifests(gang());
  const [service, podGroup, job] = objects;

  it('is a headless Service, a PodGroup of all the nodes and an indexed Job of one pod per node', () => {
    expect(objects.map((o) => `${o.apiVersion} ${o.kind} ${o.metadata.name}`)).toEqual([
      'v1 Service lf-llama2-7b-pretrain-a3',
      'scheduling.k8s.io/v1beta1 PodGroup lf-llama2-7b-pretrain-a3',
      'batch/v1 Job lf-llama2-7b-pretrain-a3',
    ]);
    expect(service.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true });
    expect(podGroup.spec).toEqual({ schedulingPolicy: { gang: { minCount: 2 } } });
    expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: 2, parallelism: 2, backoffLimit: 0 });
    const pod = template(job);
    expect(pod.spec).toMatchObject({
      restartPolicy: 'Never',
      terminationGracePeriodSeconds: 45,
      subdomain: job.metadata.name,
      schedulingGroup: { podGroupName: job.metadata.name },
    });
    expect(pod.metadata.labels['linkflow.dev/gang']).toBe(job.metadata.name);
    expect(objects.every((o) => o.metadata.namespace === 'train' && o.metadata.annotations?.['linkflow.dev/fingerprint'] === 'abc')).toBe(true);
  });

  it("runs the launch under the constant script, torchrun's rank from the Job's index, the address from the rendezvous", () => {
    const c = template(job).spec.containers[0];
    expect(c.name).toBe('ascend');
    expect(c.command).toEqual(['/bin/bash', '-c', RANK_SCRIPT, 'linkflow-rank']);
    expect(c.args).toEqual([
      'torchrun',
      '--nproc_per_node',
      '8',
      '--nnodes',
      '2',
      '--node_rank',
      '$(LINKFLOW_NODE_RANK)',
      '--master_addr',
      '@LINKFLOW_MASTER_ADDR@',
      '--master_port',
      '6000',
      'pretrain_gpt.py',
      '--train-iters',
      '100',
      '--data-path',
      // The spec's own "$(" is escaped: the kubelet expands only the launch's placeholders.
      '/shared/$$(HOME)/data',
    ]);
    expect(c.resources).toEqual({ requests: { 'huawei.com/Ascend910': '8' }, limits: { 'huawei.com/Ascend910': '8' } });
    expect(c.env).toEqual([
      { name: 'LINKFLOW_NODE_RANK', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } },
      { name: 'LINKFLOW_POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
      { name: 'LINKFLOW_RENDEZVOUS', value: '/shared/logs/attempt-3.k8s/rendezvous' },
      { name: 'HCCL_CONNECT_TIMEOUT', value: '1200' },
      { name: 'LINKFLOW_STOP_WORKERS', value: '1' },
    ]);
    expect(c.volumeMounts).toEqual([{ name: 'workspace-0', mountPath: '/shared', readOnly: undefined }]);
    expect(template(job).spec.volumes).toEqual([{ name: 'workspace-0', hostPath: { path: '/shared', type: 'Directory' } }]);
  });

  it('takes secrets from the Secret by name, never by value, and leaves lost nodes out through node affinity', () => {
    const withSecret = gangManifests(gang({ secretName: 'lf-x-env', avoidNodes: ['node-2', 'node-2'] }));
    const pod = template(withSecret.at(-1)!);
    expect(pod.spec.containers[0].envFrom).toEqual([{ secretRef: { name: 'lf-x-env' } }]);
    expect(pod.spec.affinity).toEqual({
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: {
          nodeSelectorTerms: [{ matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'NotIn', values: ['node-2'] }] }],
        },
      },
    });
  });

  it('asks for no gang where the cluster has no PodGroup, and for no devices when the stage runs none', () => {
    const plain = gangManifests(gang({ podGroups: false, usesDevices: false }));
    expect(plain.map((o) => o.kind)).toEqual(['Service', 'Job']);
    expect(template(plain[1]).spec.schedulingGroup).toBeUndefined();
    expect(template(plain[1]).spec.containers[0].resources).toBeUndefined();
  });

  it('passes settings through: node selector, tolerations, service account, priority class, extra pod fields, a claim', () => {
    const s = settings({
      nodeSelector: { accelerator: 'ascend-910b' },
      tolerations: [{ key: 'huawei.com/Ascend910', operator: 'Exists', effect: 'NoSchedule' }],
      serviceAccount: 'trainer',
      priorityClass: 'high',
      pod: { hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet' },
      volumes: [{ claim: 'ckpt', mountPath: '/data' }],
      resources: { memory: '256Gi', cpu: 32 },
    });
    const pod = template(gangManifests(gang({ settings: s })).at(-1)!);
    expect(pod.spec).toMatchObject({
      nodeSelector: { accelerator: 'ascend-910b' },
      tolerations: [{ key: 'huawei.com/Ascend910', operator: 'Exists', effect: 'NoSchedule' }],
      serviceAccountName: 'trainer',
      priorityClassName: 'high',
      hostNetwork: true,
      dnsPolicy: 'ClusterFirstWithHostNet',
      volumes: [{ name: 'workspace-0', persistentVolumeClaim: { claimName: 'ckpt' } }],
    });
    expect(pod.spec.containers[0].resources).toEqual({
      requests: { memory: '256Gi', cpu: '32', 'huawei.com/Ascend910': '8' },
      limits: { memory: '256Gi', cpu: '32', 'huawei.com/Ascend910': '8' },
    });
  });
});

describe('the Volcano and AscendJob flavours', () => {
  it('is one Volcano Job: minAvailable = nodes, the queue, master and worker tasks, torchrun from the pytorch plugin', () => {
    const [vc] = gangManifests(gang({ settings: settings({ flavour: 'volcano', queue: 'llm' }) }));
    expect(vc).toMatchObject({
      apiVersion: 'batch.volcano.sh/v1alpha1',
      kind: 'Job',
      spec: { minAvailable: 2, queue: 'llm', schedulerName: 'volcano', maxRetry: 0 },
    });
    const tasks = (vc.spec as { tasks: { name: string; replicas: number; template: Pod }[] }).tasks;
    expect(tasks.map((t) => [t.name, t.replicas])).toEqual([
      ['master', 1],
      ['worker', 1],
    ]);
    const args = tasks[0].template.spec.containers[0].args as string[];
    expect(args.slice(5, 11)).toEqual(['--node_rank', '$(RANK)', '--master_addr', '$(MASTER_ADDR)', '--master_port', '$(MASTER_PORT)']);
  });

  it("is one AscendJob: Master and Worker replicas, container ascend with ascendjob-port, RANK as torchrun's node rank", () => {
    const [ac] = gangManifests(gang({ settings: settings({ flavour: 'ascendjob', faultScheduling: 'grace', faultRetryTimes: 2 }) }));
    expect(ac).toMatchObject({
      apiVersion: 'mindxdl.gitee.com/v1',
      kind: 'AscendJob',
      metadata: { labels: { framework: 'pytorch', 'fault-scheduling': 'grace', 'fault-retry-times': '2' } },
      spec: { schedulerName: 'volcano', runPolicy: { backoffLimit: 0, schedulingPolicy: { minAvailable: 2, queue: 'default' } } },
    });
    const replicas = (ac.spec as { replicaSpecs: Record<string, { replicas: number; restartPolicy: string; template: Pod }> }).replicaSpecs;
    expect(Object.entries(replicas).map(([k, v]) => [k, v.replicas, v.restartPolicy])).toEqual([
      ['Master', 1, 'Never'],
      ['Worker', 1, 'Never'],
    ]);
    const c = replicas.Worker.template.spec.containers[0];
    expect(c.name).toBe('ascend');
    expect(c.ports).toEqual([{ name: 'ascendjob-port', containerPort: 6000 }]);
    expect(replicas.Worker.template.metadata.labels['fault-scheduling']).toBe('grace');
    // nproc_per_node and nnodes are the plan's; the rank and rendezvous are the operator's variables.
    expect(renderLaunch(rankLaunch(launch, 'ascendjob'))).toEqual([
      'torchrun',
      '--nproc_per_node',
      '8',
      '--nnodes',
      '2',
      '--node_rank',
      '$(RANK)',
      '--master_addr',
      '$(MASTER_ADDR)',
      '--master_port',
      '$(MASTER_PORT)',
    ]);
    expect(gangManifests(gang({ settings: settings({ flavour: 'ascendjob' }) }))[0].metadata.labels?.['fault-scheduling']).toBeUndefined();
  });
});

describe('the planned stages', () => {
  it('renders a training stage of the five-stage spec for every flavour, single-node stages as one pod', () => {
    for (const flavour of ['pods', 'volcano', 'ascendjob'] as const) {
      const r = planPipeline(k8sSpec({ flavour, ...(flavour === 'pods' ? {} : { queue: 'default' }) }), { baseDir: '/tmp' });
      if (!r.ok) throw new Error(JSON.stringify(r.problems));
      for (const stage of r.plan.stages) {
        const l = launchOf(stage);
        const objects = gangManifests({ ...gang(), settings: stage.kubernetes!, stage: stage.name, launch: l, podGroups: true });
        expect(objects.length).toBeGreaterThan(0);
        if (l.kind === 'python') expect(JSON.stringify(objects)).not.toContain('--node_rank');
      }
    }
  });
});

const pod = (over: Partial<PodView>): PodView => ({ name: 'p-0', phase: 'Running', conditions: [], nodeName: 'node-1', ...over });
const view = (pods: PodView[], over: Partial<GangView> = {}): GangView => ({
  expected: 2,
  pods,
  nodes: { 'node-1': { ready: true }, 'node-2': { ready: true } },
  conditions: [],
  events: [],
  ...over,
});

describe('endings from the API', () => {
  it('queued with the scheduler’s reason, then running, then a clean exit', () => {
    const pending = pod({
      phase: 'Pending',
      nodeName: undefined,
      conditions: [
        { type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/2 nodes are available: 2 Insufficient huawei.com/Ascend910.' },
      ],
    });
    expect(gangPhase(view([pending, { ...pending, name: 'p-1' }]))).toEqual({
      phase: 'queued',
      note: 'Kubernetes: 2 of 2 pods unschedulable (Unschedulable): 0/2 nodes are available: 2 Insufficient huawei.com/Ascend910.',
    });
    expect(gangPhase(view([pod({})]))).toEqual({ phase: 'queued', note: 'Kubernetes: 1 of 2 pods created' });
    expect(gangPhase(view([pod({}), pod({ name: 'p-1', nodeName: 'node-2' })]))).toEqual({ phase: 'running', nodes: ['node-1', 'node-2'] });
    const done = { phase: 'Succeeded', terminated: { exitCode: 0 } };
    expect(gangPhase(view([pod(done), pod({ ...done, name: 'p-1' })]))).toMatchObject({ phase: 'ended', ending: { kind: 'exit', exitCode: 0 } });
  });

  it("a rank's own failure is its exit, the first rank to fail speaks (128 + n is signal n)", () => {
    const p = gangPhase(
      view([
        pod({ name: 'p-0', phase: 'Failed', terminated: { exitCode: 1, finishedAt: '2026-01-01T00:00:05Z' } }),
        pod({ name: 'p-1', nodeName: 'node-2', phase: 'Failed', terminated: { exitCode: 137, finishedAt: '2026-01-01T00:00:02Z' } }),
      ]),
    );
    expect(p).toMatchObject({ phase: 'ended', ending: { kind: 'exit', exitCode: null, signal: 'SIGKILL', pod: 'p-1', node: 'node-2' } });
  });

  it('a node NotReady or deleted under a rank is node-lost, that node blamed', () => {
    const running = [pod({}), pod({ name: 'p-1', nodeName: 'node-2' })];
    expect(gangPhase(view(running, { nodes: { 'node-1': { ready: true }, 'node-2': { ready: false } } }))).toMatchObject({
      phase: 'ended',
      ending: { kind: 'class', class: 'node-lost', node: 'node-2', reason: 'node node-2 is NotReady under pod p-1' },
    });
    expect(gangPhase(view(running, { nodes: { 'node-1': { ready: true }, 'node-2': undefined } }))).toMatchObject({
      ending: { class: 'node-lost', node: 'node-2', reason: 'node node-2 was deleted under pod p-1' },
    });
    // The node's rank failed first (its peer's store vanished): the lost node still wins.
    const echo = [pod({ phase: 'Failed', terminated: { exitCode: 1 } }), pod({ name: 'p-1', nodeName: 'node-2' })];
    expect(gangPhase(view(echo, { nodes: { 'node-1': { ready: true }, 'node-2': { ready: false } } }))).toMatchObject({ ending: { class: 'node-lost' } });
  });

  it('preemption and eviction are preempted; DeadlineExceeded is time-limit; OOMKilled is out-of-memory (host memory)', () => {
    const disrupted = (reason: string) =>
      gangPhase(view([pod({ phase: 'Failed', conditions: [{ type: 'DisruptionTarget', status: 'True', reason, message: 'by x' }] }), pod({ name: 'p-1' })]));
    expect(disrupted('PreemptionByScheduler')).toMatchObject({ ending: { class: 'preempted', retryable: true } });
    expect(disrupted('EvictionByEvictionAPI')).toMatchObject({ ending: { class: 'preempted' } });
    expect(disrupted('DeletionByTaintManager')).toMatchObject({ ending: { class: 'node-lost', node: 'node-1' } });
    expect(
      gangPhase(view([pod({ phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: memory.' }), pod({ name: 'p-1' })])),
    ).toMatchObject({
      ending: { class: 'preempted', reason: 'pod p-0 was evicted from node node-1: The node was low on resource: memory.' },
    });
    expect(gangPhase(view([pod({ phase: 'Failed', reason: 'DeadlineExceeded' }), pod({ name: 'p-1' })]))).toMatchObject({ ending: { class: 'time-limit' } });
    expect(
      gangPhase(
        view([pod({}), pod({ name: 'p-1' })], {
          conditions: [{ type: 'Failed', status: 'True', reason: 'DeadlineExceeded', message: 'Job was active longer than specified deadline' }],
        }),
      ),
    ).toMatchObject({
      ending: { class: 'time-limit' },
    });
    expect(gangPhase(view([pod({ phase: 'Failed', terminated: { exitCode: 137, reason: 'OOMKilled' } }), pod({ name: 'p-1' })]))).toMatchObject({
      ending: { class: 'out-of-memory', node: 'node-1' },
    });
  });

  it('an image that cannot be pulled or a pod the controller may not create is rejected, not retried, with the API’s words', () => {
    expect(
      gangPhase(
        view([pod({ phase: 'Pending', waiting: { reason: 'ErrImageNeverPull', message: 'Container image "x:1" is not present with pull policy of Never' } })]),
      ),
    ).toMatchObject({
      ending: {
        kind: 'class',
        class: 'rejected',
        retryable: false,
        reason: 'pod p-0: ErrImageNeverPull: Container image "x:1" is not present with pull policy of Never',
      },
    });
    expect(
      gangPhase(
        view([], {
          events: [{ object: 'lf-x', reason: 'FailedCreate', message: 'pods "lf-x-0" is forbidden: exceeded quota: npu, requested: huawei.com/Ascend910=8' }],
        }),
      ),
    ).toMatchObject({ ending: { class: 'rejected', retryable: false, reason: expect.stringContaining('exceeded quota') } });
  });

  it('a gang deleted from outside is killed; podView reads the API’s Pod', () => {
    expect(gangPhase(view([pod({}), pod({ name: 'p-1' })], { gone: true }))).toMatchObject({ ending: { class: 'killed' } });
    const v = podView(
      {
        metadata: { name: 'lf-0', annotations: { 'batch.kubernetes.io/job-completion-index': '1' } },
        spec: { nodeName: 'node-2' },
        status: { phase: 'Failed', containerStatuses: [{ name: 'ascend', state: { terminated: { exitCode: 1, reason: 'Error' } } }] },
      },
      'linkflow.dev/node-rank',
    );
    expect(v).toMatchObject({ name: 'lf-0', nodeRank: 1, nodeName: 'node-2', phase: 'Failed', terminated: { exitCode: 1 } });
  });
});

describe('without a cluster: the schemas linkflow carries', () => {
  const gangsOf = (kubernetes: Record<string, unknown>) => {
    const r = planPipeline(k8sSpec(kubernetes), { baseDir: '/tmp' });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    return r.plan.stages.map((s) => ({ stage: s.name, objects: plannedGangObjects(r.plan.name, s) }));
  };

  it("accept every stage's gang of every flavour", () => {
    for (const flavour of ['pods', 'volcano', 'ascendjob']) {
      const checked = checkOffline(gangsOf({ flavour, ...(flavour === 'pods' ? {} : { queue: 'llm' }), tolerations: [{ key: 'npu', operator: 'Exists' }] }));
      expect(checked.problems, flavour).toEqual([]);
      expect(checked.how).toMatch(/kube-apiserver v1\.37\.2 \/openapi\/v3.*reference\/kubernetes\/ascendjobs\.mindxdl\.gitee\.com\.yaml/);
    }
  });

  it('refuse an unknown or mistyped pod field with its path, as strict field validation does', () => {
    const { problems } = checkOffline(gangsOf({ pod: { hostNetwrk: true, dnsPolicy: 7 } }));
    expect(problems).toContain('stage pretrain: Job lf-p-pretrain-a1: spec.template.spec.hostNetwrk: unknown field "spec.template.spec.hostNetwrk"');
    expect(problems).toContain('stage pretrain: Job lf-p-pretrain-a1: spec.template.spec.dnsPolicy: expected a string, got number');
  });
});

describe("the rank's script (run by bash here as in the container)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lf-rank-'));
  const file = (name: string, text: string) => (fs.writeFileSync(path.join(dir, name), text), path.join(dir, name));
  // A launcher like torchrun's agent: one worker child; the agent would SIGKILL it if stopped itself.
  const worker = file('worker.sh', `trap 'sleep 0.5; echo saved > "$1/saved"; exit 0' TERM\necho > "$1/ready"\nwhile :; do sleep 0.05; done\n`);
  const launcher = file(
    'launcher.sh',
    `trap 'echo agent > "$1/agent-stopped"; kill -KILL $w; exit 1' TERM\nbash ${worker} "$1" & w=$!\nwait $w; wait $w; echo "$SETUP_VALUE" > "$1/env"; exit 3\n`,
  );

  it("sends the kubelet's SIGTERM to the launcher's workers, not to the launcher, and exits as the launcher did", async () => {
    const out = fs.mkdtempSync(path.join(dir, 'run-'));
    const setup = file('setup.sh', 'SETUP_VALUE=from-setup\n');
    const env = { ...process.env, LINKFLOW_STOP_WORKERS: '1', LINKFLOW_SETUP_SCRIPT: setup };
    const rank = spawn('bash', ['-c', RANK_SCRIPT, 'linkflow-rank', 'bash', launcher, out], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    rank.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    while (!fs.existsSync(path.join(out, 'ready'))) await new Promise((r) => setTimeout(r, 20));
    rank.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => rank.on('exit', (c) => r(c)));
    expect(stderr).toMatch(/linkflow: stopping; SIGTERM to the launcher's worker processes \d+/);
    expect(fs.existsSync(path.join(out, 'agent-stopped'))).toBe(false);
    expect(fs.readFileSync(path.join(out, 'saved'), 'utf8')).toBe('saved\n');
    expect(fs.readFileSync(path.join(out, 'env'), 'utf8')).toBe('from-setup\n'); // sourced with set -a
    expect(code).toBe(3);
  });

  it('stops with exit 97 and says so when the setup script fails', () => {
    const bad = file('bad-setup.sh', 'return 4\n');
    const r = spawnSync('bash', ['-c', RANK_SCRIPT, 'linkflow-rank', 'true'], { env: { ...process.env, LINKFLOW_SETUP_SCRIPT: bad }, encoding: 'utf8' });
    expect(r.status).toBe(97);
    expect(r.stderr).toContain(`linkflow: setup script ${bad} failed`);
  });
});
