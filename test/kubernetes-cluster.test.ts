/**
 * The test harness's Kubernetes cluster (testkit/kubernetes): two real kubelet nodes with simulated
 * NPUs run a Job of the emulator's image one pod per node, native gang scheduling keeps a gang that
 * cannot fit Pending, a killed node goes NotReady, the stand-in CRDs of Volcano and MindCluster check
 * objects by server-side dry run, and stopping leaves nothing on the host.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  KubeApiError,
  kubernetesAvailable,
  nodeAllocatable,
  nodeReady,
  referenceCrds,
  startKubernetesCluster,
  type KubeList,
  type KubeObject,
  type KubernetesCluster,
} from '../testkit/kubernetes/index.ts';
import { ROOT, tempDir } from '../testkit/specs.ts';
import { processesMentioning, until } from '../testkit/wait.ts';

const NS = 'smoke';

interface PodStatus {
  phase?: string;
  podIP?: string;
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
}

// Outside CI a machine without the Kubernetes binaries or Debian's packages skips these; in CI (.ci/run builds and installs them) they fail.
describe.skipIf(!kubernetesAvailable() && !process.env.CI)('a Kubernetes cluster on this machine', () => {
  let cluster: KubernetesCluster;
  const workspace = tempDir('k8s-smoke');

  beforeAll(async () => {
    cluster = await startKubernetesCluster({ nodes: 2 });
    await cluster.createNamespace(NS);
  }, 600_000);

  afterAll(async () => {
    await cluster?.stop();
    fs.rmSync(workspace, { recursive: true, force: true });
  }, 180_000);

  const pods = async (selector: string) =>
    (await cluster.api.get<KubeList<KubeObject & { status: PodStatus }>>(`/api/v1/namespaces/${NS}/pods`, { labelSelector: selector })).items;

  it('has two Ready nodes with 8 simulated NPUs each', async () => {
    const nodes = (await cluster.api.get<KubeList>('/api/v1/nodes')).items;
    expect(nodes.map((n) => n.metadata.name).sort()).toEqual(['node-1', 'node-2']);
    for (const n of nodes) {
      expect(nodeReady(n)).toBe(true);
      expect(nodeAllocatable(n, 'huawei.com/Ascend910')).toBe('8');
    }
  });

  it('runs an indexed Job of two 8-NPU pods, one per node, with the emulator and the workspace mounted from the host', async () => {
    // Importing every emulator module proves the image has the standard library the emulator needs.
    const script = [
      'import importlib, os, pkgutil, sys',
      "sys.path.insert(0, '/emulator')",
      'import mlemu',
      "mods = [importlib.import_module('mlemu.' + m.name) for m in pkgutil.iter_modules(mlemu.__path__)]",
      "rank, node = os.environ['JOB_COMPLETION_INDEX'], os.environ['NODE_NAME']",
      "open(f'/workspace/rank-{rank}', 'w').write(node)",
      "print(f'rank {rank} on {node}: {len(mods)} emulator modules, python {sys.version.split()[0]}')",
    ].join('\n');
    await cluster.api.create(`/apis/batch/v1/namespaces/${NS}/jobs`, {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'train-smoke' },
      spec: {
        completionMode: 'Indexed',
        completions: 2,
        parallelism: 2,
        backoffLimit: 0,
        template: {
          metadata: { labels: { app: 'train-smoke' } },
          spec: {
            restartPolicy: 'Never',
            containers: [
              {
                name: 'rank',
                image: cluster.images.python.ref,
                imagePullPolicy: 'Never',
                command: ['python3', '-c', script],
                env: [{ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } }],
                resources: { limits: { 'huawei.com/Ascend910': '8' } },
                volumeMounts: [
                  { name: 'emulator', mountPath: '/emulator', readOnly: true },
                  { name: 'workspace', mountPath: '/workspace' },
                ],
              },
            ],
            volumes: [
              { name: 'emulator', hostPath: { path: path.join(ROOT, 'emulator'), type: 'Directory' } },
              { name: 'workspace', hostPath: { path: workspace, type: 'Directory' } },
            ],
          },
        },
      },
    });
    await until(
      'the Job to complete',
      async () => {
        const job = await cluster.api.get(`/apis/batch/v1/namespaces/${NS}/jobs/train-smoke`);
        const conditions = (job.status?.conditions ?? []) as { type: string; status: string; message?: string }[];
        const failed = conditions.find((c) => c.type === 'Failed' && c.status === 'True');
        if (failed) throw new Error(`the Job failed: ${failed.message}`);
        return conditions.some((c) => c.type === 'Complete' && c.status === 'True');
      },
      { timeoutMs: 120_000, everyMs: 500 },
    );
    const done = await pods('app=train-smoke');
    expect(done.map((p) => p.spec?.nodeName).sort()).toEqual(['node-1', 'node-2']);
    const logs = await Promise.all(done.map((p) => cluster.api.text('GET', `/api/v1/namespaces/${NS}/pods/${p.metadata.name}/log`)));
    const lines = logs.map((l) => l.trim()).sort();
    expect(lines[0]).toMatch(/^rank 0 on node-[12]: \d+ emulator modules, python 3\.11\.\d+$/);
    expect(lines[1]).toMatch(/^rank 1 on node-[12]: \d+ emulator modules, python 3\.11\.\d+$/);
    expect([0, 1].map((r) => fs.readFileSync(path.join(workspace, `rank-${r}`), 'utf8')).sort()).toEqual(['node-1', 'node-2']);
  }, 180_000);

  it("lets ranks on different nodes find each other by name through a headless Service (the cluster's DNS), as torchrun's MASTER_ADDR does", async () => {
    await cluster.api.create(`/api/v1/namespaces/${NS}/services`, {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'rdzv' },
      spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector: { app: 'rdzv' }, ports: [{ name: 'master', port: 29500 }] },
    });
    const script = [
      'import os, socket, time',
      "rank = int(os.environ['JOB_COMPLETION_INDEX'])",
      'if rank == 0:',
      "    server = socket.create_server(('', 29500))",
      '    conn, peer = server.accept()',
      "    print(f'rank 0 heard: {conn.recv(100).decode()}', flush=True)",
      'else:',
      '    deadline = time.time() + 60',
      '    while True:',
      '        try:',
      "            ip = socket.gethostbyname('rdzv-0.rdzv')",
      '            conn = socket.create_connection((ip, 29500), timeout=5)',
      '            break',
      '        except OSError:',
      '            if time.time() > deadline: raise',
      '            time.sleep(0.5)',
      "    conn.sendall(f'rank 1 from {socket.gethostname()}'.encode())",
      "    print(f'rank 1 reached rdzv-0.rdzv at {ip}', flush=True)",
    ].join('\n');
    await cluster.api.create(`/apis/batch/v1/namespaces/${NS}/jobs`, {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'rdzv' },
      spec: {
        completionMode: 'Indexed',
        completions: 2,
        parallelism: 2,
        backoffLimit: 0,
        template: {
          metadata: { labels: { app: 'rdzv' } },
          spec: {
            restartPolicy: 'Never',
            subdomain: 'rdzv',
            containers: [
              {
                name: 'rank',
                image: cluster.images.python.ref,
                imagePullPolicy: 'Never',
                command: ['python3', '-c', script],
                resources: { limits: { 'huawei.com/Ascend910': '8' } },
              },
            ],
          },
        },
      },
    });
    await until(
      'the rendezvous Job to complete',
      async () => {
        const job = await cluster.api.get(`/apis/batch/v1/namespaces/${NS}/jobs/rdzv`);
        const conditions = (job.status?.conditions ?? []) as { type: string; status: string; message?: string }[];
        if (conditions.some((c) => c.type === 'Failed' && c.status === 'True')) throw new Error('the rendezvous Job failed');
        return conditions.some((c) => c.type === 'Complete' && c.status === 'True');
      },
      { timeoutMs: 120_000, everyMs: 500 },
    );
    const ranks = await pods('app=rdzv');
    expect(new Set(ranks.map((p) => p.spec?.nodeName)).size).toBe(2);
    const rank0 = ranks.find((p) => p.metadata.annotations?.['batch.kubernetes.io/job-completion-index'] === '0');
    const logs = (await Promise.all(ranks.map((p) => cluster.api.text('GET', `/api/v1/namespaces/${NS}/pods/${p.metadata.name}/log`)))).join('');
    expect(logs).toContain(`rank 1 reached rdzv-0.rdzv at ${String(rank0?.status.podIP)}`);
    expect(logs).toContain('rank 0 heard: rank 1 from rdzv-1');
  }, 180_000);

  it('keeps a gang too large for the nodes Pending while a gang that fits runs (native PodGroup)', async () => {
    const gang = async (name: string, size: number, npus: number) => {
      await cluster.api.create(`/apis/scheduling.k8s.io/v1beta1/namespaces/${NS}/podgroups`, {
        apiVersion: 'scheduling.k8s.io/v1beta1',
        kind: 'PodGroup',
        metadata: { name },
        spec: { schedulingPolicy: { gang: { minCount: size } } },
      });
      for (let i = 0; i < size; i++) {
        await cluster.api.create(`/api/v1/namespaces/${NS}/pods`, {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `${name}-${i}`, labels: { gang: name } },
          spec: {
            restartPolicy: 'Never',
            schedulingGroup: { podGroupName: name },
            containers: [
              {
                name: 'rank',
                image: cluster.images.python.ref,
                imagePullPolicy: 'Never',
                command: ['python3', '-c', `print("${name} rank ${i}")`],
                resources: { limits: { 'huawei.com/Ascend910': String(npus) } },
              },
            ],
          },
        });
      }
    };
    // Three pods of 8 NPUs on two nodes of 8: all or nothing means nothing.
    await gang('too-big', 3, 8);
    await gang('fits', 2, 4);
    await until('the fitting gang to finish', async () => (await pods('gang=fits')).every((p) => p.status.phase === 'Succeeded'), {
      timeoutMs: 120_000,
      everyMs: 500,
    });
    const big = await pods('gang=too-big');
    expect(big.map((p) => [p.status.phase, p.spec?.nodeName ?? null])).toEqual([
      ['Pending', null],
      ['Pending', null],
      ['Pending', null],
    ]);
    const unschedulable = big[0].status.conditions?.find((c) => c.type === 'PodScheduled');
    expect(unschedulable?.status).toBe('False');
    expect(unschedulable?.message ?? '').not.toBe('');
    for (let i = 0; i < 3; i++) await cluster.api.delete(`/api/v1/namespaces/${NS}/pods/too-big-${i}`, { gracePeriodSeconds: 0 });
  }, 180_000);

  it('checks Volcano Jobs and PodGroups and MindCluster AscendJobs against the stand-in CRDs by server-side dry run', async () => {
    await cluster.installCrds(referenceCrds());
    const dryRun = (plural: string, group: string, version: string, body: unknown) =>
      cluster.api.create(`/apis/${group}/${version}/namespaces/${NS}/${plural}`, body, { dryRun: 'All', fieldValidation: 'Strict' });
    const template = { spec: { containers: [{ name: 'ascend', image: cluster.images.python.ref, ports: [{ name: 'ascendjob-port', containerPort: 2222 }] }] } };
    const vcjob = (spec: Record<string, unknown>) => ({ apiVersion: 'batch.volcano.sh/v1alpha1', kind: 'Job', metadata: { name: 'vc' }, spec });
    const acjob = (spec: Record<string, unknown>) => ({
      apiVersion: 'mindxdl.gitee.com/v1',
      kind: 'AscendJob',
      metadata: { name: 'ac', labels: { framework: 'pytorch' } },
      spec,
    });

    const accepted = await dryRun(
      'jobs',
      'batch.volcano.sh',
      'v1alpha1',
      vcjob({ minAvailable: 2, queue: 'default', tasks: [{ name: 'rank', replicas: 2, template }] }),
    );
    expect(accepted.spec?.maxRetry).toBe(3); // the CRD's default, applied by the API server
    await expect(
      dryRun('jobs', 'batch.volcano.sh', 'v1alpha1', vcjob({ minAvailable: 'two', tasks: [{ name: 'Rank_0', replicas: 2, template }] })),
    ).rejects.toThrow(/spec\.minAvailable.*integer|spec\.tasks\[0\]\.name/);
    await expect(dryRun('jobs', 'batch.volcano.sh', 'v1alpha1', vcjob({ minAvailable: 2, maxRetries: 3 }))).rejects.toThrow(/unknown field "spec\.maxRetries"/);
    await dryRun('podgroups', 'scheduling.volcano.sh', 'v1beta1', {
      apiVersion: 'scheduling.volcano.sh/v1beta1',
      kind: 'PodGroup',
      metadata: { name: 'pg' },
      spec: { minMember: 2 },
    });
    await expect(
      dryRun('podgroups', 'scheduling.volcano.sh', 'v1beta1', {
        apiVersion: 'scheduling.volcano.sh/v1beta1',
        kind: 'PodGroup',
        metadata: { name: 'pg' },
        spec: { minMember: -1 },
      }),
    ).rejects.toThrow(/spec\.minMember/);

    const replicaSpecs = { Master: { replicas: 1, restartPolicy: 'Never', template }, Worker: { replicas: 1, restartPolicy: 'Never', template } };
    await dryRun(
      'ascendjobs',
      'mindxdl.gitee.com',
      'v1',
      acjob({ schedulerName: 'volcano', runPolicy: { schedulingPolicy: { minAvailable: 2, queue: 'default' } }, replicaSpecs }),
    );
    const refused = await dryRun('ascendjobs', 'mindxdl.gitee.com', 'v1', acjob({ runPolicy: {} })).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(KubeApiError);
    expect((refused as KubeApiError).status).toBe(422);
    expect((refused as KubeApiError).message).toContain('spec.replicaSpecs: Required value');
    await expect(
      dryRun(
        'ascendjobs',
        'mindxdl.gitee.com',
        'v1',
        acjob({ replicaSpecs: { Worker: { replicas: 1, template: { spec: { containers: [{ image: 'x' }] } } } } }),
      ),
    ).rejects.toThrow(/containers\[0\]\.name: Required value/);
    // A dry run stores nothing.
    expect((await cluster.api.get<KubeList>(`/apis/mindxdl.gitee.com/v1/namespaces/${NS}/ascendjobs`)).items).toEqual([]);
    expect((await cluster.api.get<KubeList>(`/apis/batch.volcano.sh/v1alpha1/namespaces/${NS}/jobs`)).items).toEqual([]);
  }, 120_000);

  it("takes a node down when its kubelet and containers are killed: it goes NotReady and its pod's processes are gone", async () => {
    const marker = `linkflow-k8s-sleeper-${cluster.id}`;
    await cluster.api.create(`/api/v1/namespaces/${NS}/pods`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'sleeper' },
      spec: {
        restartPolicy: 'Never',
        nodeSelector: { 'kubernetes.io/hostname': 'node-2' },
        containers: [
          { name: 'sleep', image: cluster.images.python.ref, imagePullPolicy: 'Never', command: ['python3', '-c', 'import time; time.sleep(600)', marker] },
        ],
      },
    });
    await until('the sleeper to run', async () => processesMentioning(marker).length > 0, { timeoutMs: 60_000, everyMs: 300 });
    cluster.killNode('node-2');
    expect(processesMentioning(marker)).toEqual([]);
    // The controller-manager's grace period is seconds (6 s), not the default 50 s: the wait is generous.
    const lost = await until(
      'node-2 to be NotReady',
      async () => {
        const node = await cluster.api.get('/api/v1/nodes/node-2');
        return nodeReady(node) ? undefined : node;
      },
      { timeoutMs: 60_000, everyMs: 250 },
    );
    const ready = ((lost.status?.conditions ?? []) as { type: string; status: string; reason?: string }[]).find((c) => c.type === 'Ready');
    expect([ready?.status, ready?.reason]).toEqual(['Unknown', 'NodeStatusUnknown']);
    expect(nodeReady(await cluster.api.get('/api/v1/nodes/node-1'))).toBe(true);
  }, 120_000);

  it('stops without leaving a process, mount, network namespace or cgroup behind', async () => {
    const { dir, id } = cluster;
    await cluster.stop();
    expect(cluster.leftovers()).toEqual([]);
    expect(processesMentioning(dir)).toEqual([]);
    expect(fs.readFileSync('/proc/self/mountinfo', 'utf8')).not.toContain(dir);
    expect(spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout).not.toContain(id);
    const cgroups = fs.readdirSync('/sys/fs/cgroup').flatMap((h) => {
      try {
        return fs.readdirSync(path.join('/sys/fs/cgroup', h)).filter((c) => c.includes(id));
      } catch {
        return [];
      }
    });
    expect(cgroups).toEqual([]);
    expect(fs.existsSync(dir)).toBe(false);
  }, 120_000);
});
