/**
 * The Kubernetes executor against a real cluster on this machine (testkit/kubernetes: etcd,
 * kube-apiserver, scheduler, controller-manager and three real kubelets, each with its own
 * containerd, advertising simulated NPUs) and a real Temporal dev server: each attempt is one gang
 * of pods of the emulator's image, the repository and the workspace mounted by hostPath at the paths
 * the worker sees them, and the worker follows the gang through the API.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient } from '../client/connect.ts';
import { outcomeOf, snapshot, startPipeline } from '../client/pipeline.ts';
import { checkpointAndStopSignal } from '../contracts/workflows.ts';
import { kubernetesAvailable, startKubernetesCluster, type KubeList, type KubeObject, type KubernetesCluster } from '../testkit/kubernetes/index.ts';
import { fiveStageSpec, ROOT, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { planFile, runSpec, startSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { fastRetryConfig, until } from '../testkit/wait.ts';
import { runCli } from '../testkit/cli.ts';
import { referenceCrds } from '../testkit/kubernetes/index.ts';
import { startWorkerProcess, stopWorkers } from '../testkit/workers.ts';

const NS = 'training';
let cluster: KubernetesCluster;
let t: TestTemporal;
const workers: ChildProcess[] = [];
const savedKubeconfig = process.env.KUBECONFIG;

// Outside CI a machine without the Kubernetes binaries or Debian's packages skips these; in CI (.ci/run builds and installs them) they fail.
describe.skipIf(!kubernetesAvailable() && !process.env.CI)('the Kubernetes executor on a real cluster', () => {
  beforeAll(async () => {
    cluster = await startKubernetesCluster({ nodes: 3 });
    await cluster.createNamespace(NS);
    // The worker (in this process) finds the cluster as kubectl does.
    process.env.KUBECONFIG = cluster.kubeconfig;
    t = await startTestTemporal();
  }, 600_000);

  afterAll(async () => {
    stopWorkers(workers);
    await t?.stop();
    await cluster?.stop();
    if (savedKubeconfig === undefined) delete process.env.KUBECONFIG;
    else process.env.KUBECONFIG = savedKubeconfig;
  }, 180_000);

  /** Data, weights and pretraining as gangs of `nodes` pods of one device each (pp = nodes). */
  function k8sSpec(
    name: string,
    dir: string,
    o: { nodes?: number; trainIters?: number; env?: Record<string, string>; kubernetes?: Record<string, unknown> } = {},
  ): RawSpec {
    const nodes = o.nodes ?? 2;
    const spec = fiveStageSpec(name, path.join(dir, 'ws'), { trainIters: o.trainIters ?? 30, saveInterval: 10, pretrainEnv: o.env });
    spec.cluster = {
      executor: 'kubernetes',
      nodes,
      devicesPerNode: 1,
      kubernetes: {
        namespace: NS,
        image: cluster.images.python.ref,
        imagePullPolicy: 'Never',
        // One NPU per pod out of 8 per node: the gang's pods would fit on one node; spread them so each rank has its own.
        devices: { perNode: 8 },
        volumes: [{ hostPath: ROOT, readOnly: true }, { hostPath: dir }],
        ...o.kubernetes,
      },
    };
    spec.parallel = { tp: 1, pp: nodes };
    spec.stages = spec.stages.filter((s) => ['data', 'weights', 'pretrain'].includes(s.name as string));
    return spec;
  }

  /** Everything of linkflow's gangs still in the namespace, as "Kind name". */
  const left = async () => {
    const kinds = {
      Pod: `/api/v1/namespaces/${NS}/pods`,
      Job: `/apis/batch/v1/namespaces/${NS}/jobs`,
      Service: `/api/v1/namespaces/${NS}/services`,
      Secret: `/api/v1/namespaces/${NS}/secrets`,
      PodGroup: `/apis/scheduling.k8s.io/v1beta1/namespaces/${NS}/podgroups`,
    };
    const found = await Promise.all(
      Object.entries(kinds).map(async ([kind, p]) =>
        (await cluster.api.get<KubeList>(p, { labelSelector: 'app.kubernetes.io/managed-by=linkflow' })).items.map(
          (o: KubeObject) => `${kind} ${o.metadata.name}`,
        ),
      ),
    );
    return found.flat();
  };

  async function trainedPast(handle: WorkflowHandle, iteration: number): Promise<void> {
    await until(
      `pretraining past iteration ${iteration}`,
      async () => {
        const snap = await snapshot(handle);
        return snap.live?.stage === 'pretrain' && (snap.live.iteration ?? 0) >= iteration ? true : undefined;
      },
      { timeoutMs: 240_000, everyMs: 300 },
    );
  }

  const logsOf = (dir: string, name: string) => {
    const logs = path.join(dir, 'ws', name, 'pretrain', 'logs');
    return fs
      .readdirSync(logs)
      .filter((f) => f.endsWith('.log'))
      .sort()
      .map((f) => fs.readFileSync(path.join(logs, f), 'utf8'));
  };

  it('linkflow validate: every flavour by server-side dry run (Volcano and AscendJob against their CRDs), the API’s words for a refusal; offline without a cluster', async () => {
    await cluster.installCrds(referenceCrds());
    const dir = tempDir('k8s-validate');
    const env = { KUBECONFIG: cluster.kubeconfig };
    for (const flavour of ['pods', 'volcano', 'ascendjob']) {
      const spec = k8sSpec(`validate-${flavour}`, dir, flavour === 'pods' ? {} : { kubernetes: { flavour, queue: 'default' } });
      const r = await runCli(['validate', writeSpec(dir, spec, `${flavour}.yaml`)], env);
      expect(r.stderr, flavour).toBe('');
      expect(r.stdout).toMatch(/kubernetes: \d+ objects of 3 stage\(s\) accepted by a server-side dry run/);
    }
    // Nothing was created by the dry runs.
    expect(await left()).toEqual([]);
    expect((await cluster.api.get<KubeList>(`/apis/mindxdl.gitee.com/v1/namespaces/${NS}/ascendjobs`)).items).toEqual([]);
    // The stand-in CRDs keep pod fields unchecked (as reference/README.md says); the Job's schema is the API server's own.
    const badPods = k8sSpec('validate-badpods', dir, { kubernetes: { pod: { hostNetwrk: true } } });
    const refusedPods = await runCli(['validate', writeSpec(dir, badPods, 'badpods.yaml')], env);
    expect(refusedPods.code).toBe(2);
    expect(refusedPods.stderr).toMatch(/server-side dry run on .*kubeconfig/);
    expect(refusedPods.stderr).toMatch(/stage pretrain: Job training\/lf-validate-badpods-pretrain-a1: .*unknown field "spec\.template\.spec\.hostNetwrk"/);
    // No cluster: the carried schemas.
    const offline = await runCli(['validate', path.join(dir, 'badpods.yaml')], { KUBECONFIG: path.join(dir, 'no-such-kubeconfig') });
    expect(offline.code).toBe(2);
    expect(offline.stderr).toMatch(/the schemas linkflow carries.*\n.*spec\.template\.spec\.hostNetwrk: unknown field/);
  }, 300_000);

  it('runs a 2-node pretraining gang as pods on two nodes; a crash of node rank 1 resumes from the checkpoint and finishes', async () => {
    const dir = tempDir('k8s-gang');
    const { state, failure } = await runSpec(t, writeSpec(dir, k8sSpec('gang', dir, { env: { MLEMU_FAULTS: 'node1:crash@15' } })));
    expect(failure).toBeUndefined();
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(pretrain.attempts[0].failureClass).toBe('exception');
    expect(pretrain.attempts[1].loadedIteration).toBe(10);
    expect(pretrain.finalIteration).toBe(30);
    // Two pods on two nodes, one gang per attempt.
    expect(pretrain.attempts[1].node?.split(',').sort()).toEqual(expect.arrayContaining([expect.stringMatching(/^node-\d$/)]));
    expect(pretrain.attempts[1].node?.split(',')).toHaveLength(2);
    const [, second] = logsOf(dir, 'gang');
    expect(second).toMatch(/# kubernetes: created Job training\/lf-gang-pretrain-a2/);
    expect(second).toMatch(/# kubernetes: created PodGroup training\/lf-gang-pretrain-a2/);
    const saveDir = path.join(dir, 'ws', 'gang', 'pretrain', 'checkpoints');
    expect(fs.readdirSync(path.join(saveDir, 'iter_0000030')).sort()).toEqual(['mp_rank_00_000', 'mp_rank_00_001']);
    expect(await left()).toEqual([]);
  }, 600_000);

  it("a stage's secrets reach the pods through the attempt's Secret: in no manifest, history, log or file of the workspace, and the Secret is deleted", async () => {
    const dir = tempDir('k8s-secrets');
    const secret = 'hf_KubeGangS3cretV4lue';
    process.env.LINKFLOW_TEST_K8S_SECRET = secret;
    const receipt = path.join(dir, 'receipt');
    // A careless wrapper around torchrun: it prints the secret and keeps what it got outside the workspace.
    const wrapper = path.join(dir, 'leaky-torchrun');
    fs.writeFileSync(
      wrapper,
      [
        '#!/bin/sh',
        `printf "%s" "$LINKFLOW_TEST_K8S_SECRET" > ${JSON.stringify(receipt)}`,
        'echo "logging in with $LINKFLOW_TEST_K8S_SECRET"',
        `exec ${path.join(ROOT, 'emulator', 'torchrun')} "$@"`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const spec = k8sSpec('secrets', dir, { nodes: 1, trainIters: 10 });
    Object.assign(
      spec.stages.find((x) => x.name === 'pretrain')!,
      { launcher: wrapper, secretEnv: ['LINKFLOW_TEST_K8S_SECRET'] },
    );
    let handle: WorkflowHandle;
    try {
      const run = await runSpec(t, writeSpec(dir, spec));
      expect(run.state.status, run.failure).toBe('succeeded');
      handle = run.handle;
    } finally {
      delete process.env.LINKFLOW_TEST_K8S_SECRET;
    }
    expect(fs.readFileSync(receipt, 'utf8')).toBe(secret);
    const log = logsOf(dir, 'secrets')[0];
    expect(log).toContain('logging in with ***');
    const files = (fs.readdirSync(path.join(dir, 'ws'), { recursive: true, withFileTypes: true }) as fs.Dirent[])
      .filter((e) => e.isFile())
      .map((e) => path.join(e.parentPath, e.name));
    // The rendered manifests are kept beside the attempt log: they name the Secret, never its value.
    const manifests = files.filter((f) => f.endsWith('manifests.json') && f.includes(`${path.sep}pretrain${path.sep}`));
    expect(manifests.length).toBeGreaterThan(0);
    expect(fs.readFileSync(manifests[0], 'utf8')).toContain('"secretRef"');
    expect(files.filter((f) => fs.readFileSync(f).includes(secret))).toEqual([]);
    const history = JSON.stringify((await handle.fetchHistory()).events);
    expect(history).not.toContain(secret);
    expect(await left()).toEqual([]);
  }, 600_000);

  it('linkflow stop: the kubelet stops the trainers with the stop grace, they save a checkpoint, and no pod is left', async () => {
    const dir = tempDir('k8s-stop');
    const spec = k8sSpec('stop', dir, { trainIters: 400, env: { MLEMU_ITER_TIME_MS: '50' } });
    Object.assign(
      spec.stages.find((s) => s.name === 'pretrain')!,
      { saveInterval: 200 },
    );
    const handle = await startSpec(t, writeSpec(dir, spec));
    await trainedPast(handle, 20);
    await handle.signal(checkpointAndStopSignal);
    const { state } = await outcomeOf(handle);
    expect(state?.status).toBe('stopped');
    expect(state!.stages.find((s) => s.name === 'pretrain')!.attempts.at(-1)!.outcome).toBe('stopped');
    // The stop save: an iteration past 20 that no interval save (every 200) would have written.
    const saved = Number(fs.readFileSync(path.join(dir, 'ws', 'stop', 'pretrain', 'checkpoints', 'latest_checkpointed_iteration.txt'), 'utf8'));
    expect(saved).toBeGreaterThanOrEqual(20);
    expect(saved).toBeLessThan(200);
    expect(logsOf(dir, 'stop').at(-1)).toMatch(/exiting program after receiving SIGTERM/);
    expect(await left()).toEqual([]);
  }, 600_000);

  it('cancel leaves no pod, Job, Service, PodGroup or Secret in the namespace', async () => {
    const dir = tempDir('k8s-cancel');
    const spec = k8sSpec('cancel', dir, { trainIters: 2000, env: { MLEMU_ITER_TIME_MS: '50' } });
    Object.assign(
      spec.stages.find((s) => s.name === 'pretrain')!,
      { secretEnv: ['LINKFLOW_TEST_K8S_CANCEL'] },
    );
    process.env.LINKFLOW_TEST_K8S_CANCEL = 'cancel-secret-value';
    try {
      const handle = await startSpec(t, writeSpec(dir, spec));
      await trainedPast(handle, 5);
      expect((await left()).filter((o) => o.startsWith('Pod ')).length).toBe(2);
      await handle.cancel();
      const { failure } = await outcomeOf(handle);
      expect(failure).toMatch(/cancel/i);
    } finally {
      delete process.env.LINKFLOW_TEST_K8S_CANCEL;
    }
    // The cancelled attempt ended only once its gang was gone.
    expect(await left()).toEqual([]);
  }, 600_000);

  it("one node's kubelet and containers killed mid-run: node-lost, that node left out, the retry runs on the other nodes, resumed", async () => {
    const dir = tempDir('k8s-nodelost');
    const spec = k8sSpec('nodelost', dir, { trainIters: 120, env: { MLEMU_ITER_TIME_MS: '100' } });
    const handle = await startSpec(t, writeSpec(dir, spec));
    await trainedPast(handle, 25);
    const pods = (
      await cluster.api.get<KubeList>(`/api/v1/namespaces/${NS}/pods`, { labelSelector: 'linkflow.dev/stage=pretrain,linkflow.dev/pipeline=nodelost' })
    ).items;
    const victim = (pods.find((p) => p.metadata.annotations?.['batch.kubernetes.io/job-completion-index'] === '1') ?? pods[0]).spec?.nodeName as string;
    cluster.killNode(victim);
    const { state, failure } = await outcomeOf(handle);
    expect(state?.status, failure).toBe('succeeded');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts[0].failureClass).toBe('node-lost');
    expect(pretrain.attempts[0].node).toBe(victim);
    const last = pretrain.attempts.at(-1)!;
    expect(last.outcome).toBe('succeeded');
    expect(last.loadedIteration).toBeGreaterThanOrEqual(20);
    expect(last.node?.split(',')).not.toContain(victim);
    expect(logsOf(dir, 'nodelost').at(-1)).toContain(`leaving out node ${victim}`);
    // The rank on the lost node was force-deleted (its kubelet cannot confirm): nothing of either gang is left.
    expect(await left()).toEqual([]);
  }, 600_000);

  it('a worker SIGKILLed mid-run leaves the gang running; the next attempt adopts it and no iteration is lost', async () => {
    const queue = `k8s-adopt-${process.pid}`;
    const env = { KUBECONFIG: cluster.kubeconfig };
    const workerA = await startWorkerProcess(t.server.address, ['--queue', queue], workers, env);
    const config = fastRetryConfig(t.server.address, '4s');
    const client = await connectClient(config);
    const dir = tempDir('k8s-adopt');
    const spec = k8sSpec('adopt', dir, { nodes: 1, trainIters: 300, env: { MLEMU_ITER_TIME_MS: '100' } });
    Object.assign(
      spec.stages.find((s) => s.name === 'pretrain')!,
      { saveInterval: 1000 },
    );
    const handle = await startPipeline(client, config, planFile(writeSpec(dir, spec)), queue);
    await trainedPast(handle, 15);
    const before = (await left()).filter((o) => o.startsWith('Pod lf-adopt-'));
    workerA.kill('SIGKILL');
    await startWorkerProcess(t.server.address, ['--queue', queue], workers, env);
    const { state, failure } = await outcomeOf(handle);
    expect(state?.status, failure).toBe('succeeded');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    // The first attempt's worker was lost; the second followed the same gang (the same pod) to its end.
    expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    const logs = logsOf(dir, 'adopt');
    expect(logs.at(-1)).toMatch(/# kubernetes: adopting gang lf-adopt-pretrain-a1 of attempt 1/);
    expect(logs.at(-1)).not.toMatch(/created Job/);
    expect(before).toHaveLength(1);
    // No save before the end (interval 1000) and no restart: the one gang trained from the start to its final checkpoint.
    const saves = fs.readdirSync(path.join(dir, 'ws', 'adopt', 'pretrain', 'checkpoints')).filter((d) => d.startsWith('iter_'));
    expect(saves).toEqual(['iter_0000300']);
    expect(pretrain.finalIteration).toBe(300);
    // The adopting attempt's log holds the gang's whole log: its first iteration (after the loaded one) once.
    expect(logs.at(-1)!.match(/\biteration\s+2\/\s/g)).toHaveLength(1);
    await client.connection.close();
    expect(await left()).toEqual([]);
  }, 600_000);

  it("a gang that cannot be scheduled waits, and status says the scheduler's reason; cancel leaves nothing", async () => {
    const dir = tempDir('k8s-pending');
    // 16 NPUs per pod for pretraining: no node has them (data and weights ask for none).
    const spec = k8sSpec('pending', dir, { kubernetes: { devices: { perNode: 16 } } });
    const handle = await startSpec(t, writeSpec(dir, spec));
    const note = await until(
      'the scheduler’s reason in the live view',
      async () => {
        const snap = await snapshot(handle);
        return snap.live?.queued?.includes('unschedulable') ? snap.live.queued : undefined;
      },
      { timeoutMs: 120_000, everyMs: 500 },
    );
    expect(note).toMatch(
      /^Kubernetes: 2 of 2 pods unschedulable \(Unschedulable\): .*Insufficient huawei\.com\/Ascend910.* \(gang training\/lf-pending-pretrain-a1\)$/,
    );
    const status = await runCli(['status', handle.workflowId], { TEMPORAL_ADDRESS: t.server.address });
    expect(status.stdout).toContain('Insufficient huawei.com/Ascend910');
    await handle.cancel();
    await outcomeOf(handle);
    expect(await left()).toEqual([]);
  }, 300_000);

  it('an image that cannot be had is rejected with the API’s message and not retried', async () => {
    const dir = tempDir('k8s-noimage');
    const spec = k8sSpec('noimage', dir, { kubernetes: { image: 'linkflow.local/no-such-image:1' } });
    spec.stages = spec.stages.filter((s) => s.name === 'data');
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status).toBe('failed');
    const data = state.stages.find((s) => s.name === 'data')!;
    expect(data.attempts).toHaveLength(1);
    expect(data.attempts[0].failureClass).toBe('rejected');
    expect(data.attempts[0].reason).toMatch(/ErrImageNeverPull: .*linkflow\.local\/no-such-image:1/);
    expect(failure).toMatch(/rejected, not retried/);
    expect(await left()).toEqual([]);
  }, 300_000);
});
