/**
 * The Slurm executor against a real Slurm cluster on this machine (testkit/slurm.ts: munged,
 * slurmctld and three slurmd nodes n1..n3) and a real Temporal dev server: each attempt is one
 * Slurm job, the emulator's torchrun runs one task per node under srun, and the worker follows the
 * job through scontrol and its log on (this machine's) shared storage.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outcomeOf, snapshot, startPipeline } from '../client/pipeline.ts';
import { slurmInstalled, startSlurmCluster, type SlurmCluster } from '../testkit/slurm.ts';
import { loadSuite } from '../benchmark/suite-file.ts';
import { benchmarkWorkflowType, checkpointAndStopSignal, type BenchmarkOutcome, type BenchmarkWorkflow } from '../contracts/workflows.ts';
import { EMULATOR, fiveStageSpec, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { planFile, runSpec, startSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { startWorkerProcess, stopWorkers } from '../testkit/workers.ts';
import { fastRetryConfig, processesMentioning, until } from '../testkit/wait.ts';
import { connectClient } from '../client/connect.ts';
import { runCli } from '../testkit/cli.ts';

let cluster: SlurmCluster;
let t: TestTemporal;
const workers: ChildProcess[] = [];
const savedConf = process.env.SLURM_CONF;

// Outside CI a machine without Debian's Slurm skips these; in CI (.ci/run installs it) a missing Slurm fails them.
describe.skipIf(!slurmInstalled() && !process.env.CI)('the Slurm executor on a real Slurm cluster', () => {
  beforeAll(async () => {
    cluster = await startSlurmCluster({ nodes: 3, npusPerNode: 8 });
    // The worker (in this process) submits with the client commands, which find the cluster here; sbatch passes it on to the jobs.
    process.env.SLURM_CONF = cluster.conf;
    t = await startTestTemporal();
  }, 180_000);

  afterAll(async () => {
    stopWorkers(workers);
    await t?.stop();
    await cluster?.stop();
    if (savedConf === undefined) delete process.env.SLURM_CONF;
    else process.env.SLURM_CONF = savedConf;
    expect(processesMentioning(cluster.dir)).toEqual([]);
  }, 120_000);

  /** Data, weights and pretraining; on `nodes` Slurm nodes of one device each (pp = nodes). */
  function slurmSpec(
    name: string,
    ws: string,
    o: { nodes?: number; trainIters?: number; env?: Record<string, string>; slurm?: Record<string, unknown> } = {},
  ): RawSpec {
    const nodes = o.nodes ?? 1;
    const spec = fiveStageSpec(name, ws, { trainIters: o.trainIters ?? 30, saveInterval: 10, pretrainEnv: o.env });
    spec.cluster = { executor: 'slurm', nodes, devicesPerNode: 1, slurm: { partition: cluster.partition, gresPerNode: 'npu:1', time: '10', ...o.slurm } };
    spec.parallel = { tp: 1, pp: nodes };
    spec.stages = spec.stages.filter((s) => ['data', 'weights', 'pretrain'].includes(s.name as string));
    return spec;
  }

  async function squeueOf(name: string): Promise<string> {
    return (await cluster.command(['squeue', '-h', '-o', '%i %j %T %r']))
      .split('\n')
      .filter((l) => l.includes(`linkflow.${name}.`))
      .join('\n');
  }

  it('runs a single-node pipeline end to end, each stage one Slurm job; a crash resumes from the checkpoint', async () => {
    const dir = tempDir('slurm-single');
    const ws = path.join(dir, 'ws');
    const { state, failure } = await runSpec(t, writeSpec(dir, slurmSpec('single', ws, { env: { MLEMU_FAULTS: 'crash@15' } })));
    expect(failure).toBeUndefined();
    expect(state.status).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(pretrain.attempts[0].failureClass).toBe('exception');
    expect(pretrain.attempts[1].loadedIteration).toBe(10);
    expect(pretrain.finalIteration).toBe(30);
    // Each attempt was a Slurm job whose output is the attempt log.
    const logs = fs.readdirSync(path.join(ws, 'single', 'pretrain', 'logs')).filter((f) => f.endsWith('.log'));
    const first = fs.readFileSync(path.join(ws, 'single', 'pretrain', 'logs', logs.sort()[0]), 'utf8');
    expect(first).toMatch(/# slurm: job \d+ submitted/);
    expect(first).toMatch(/linkflow slurm task: node rank 0 of 1 on n\d/);
    expect(first).toMatch(/--gres=npu:1/);
    expect(await squeueOf('single')).toBe('');
  }, 300_000);

  it("a stage's secrets reach the Slurm job through sbatch's environment: masked in its log, in no file of the workspace", async () => {
    const dir = tempDir('slurm-secrets');
    const ws = path.join(dir, 'ws');
    const secret = 'hf_SlurmJobS3cretV4lue';
    process.env.LINKFLOW_TEST_SLURM_SECRET = secret;
    const receipt = path.join(dir, 'receipt');
    // A careless wrapper around torchrun on the compute node: it prints the secret and keeps what it got outside the workspace.
    const wrapper = path.join(dir, 'leaky-torchrun');
    fs.writeFileSync(
      wrapper,
      [
        '#!/usr/bin/env bash',
        `printf "%s" "$LINKFLOW_TEST_SLURM_SECRET" > ${JSON.stringify(receipt)}`,
        'echo "logging in with $LINKFLOW_TEST_SLURM_SECRET"',
        `exec ${path.join(EMULATOR, 'torchrun')} "$@"`,
        '',
      ].join('\n'),
      { mode: 0o755 },
    );
    const spec = slurmSpec('secrets', ws, { trainIters: 10 });
    Object.assign(
      spec.stages.find((x) => x.name === 'pretrain')!,
      { launcher: wrapper, secretEnv: ['LINKFLOW_TEST_SLURM_SECRET'] },
    );
    try {
      const { state, failure } = await runSpec(t, writeSpec(dir, spec));
      expect(state.status, failure).toBe('succeeded');
    } finally {
      delete process.env.LINKFLOW_TEST_SLURM_SECRET;
    }
    expect(fs.readFileSync(receipt, 'utf8')).toBe(secret);
    const logs = path.join(ws, 'secrets', 'pretrain', 'logs');
    const log = fs.readdirSync(logs).filter((f) => f.endsWith('.log'))[0];
    expect(fs.readFileSync(path.join(logs, log), 'utf8')).toContain('logging in with ***');
    const leaks = (fs.readdirSync(ws, { recursive: true, withFileTypes: true }) as fs.Dirent[])
      .filter((e) => e.isFile())
      .map((e) => path.join(e.parentPath, e.name))
      .filter((f) => fs.readFileSync(f).includes(secret));
    expect(leaks).toEqual([]);
  }, 300_000);

  it('runs a 2-node gang of the emulator as one Slurm job; node 1 crashes and the job resumes from the checkpoint', async () => {
    const dir = tempDir('slurm-gang');
    const ws = path.join(dir, 'ws');
    const { state, failure } = await runSpec(t, writeSpec(dir, slurmSpec('gang', ws, { nodes: 2, env: { MLEMU_FAULTS: 'node1:crash@15' } })));
    expect(failure).toBeUndefined();
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(pretrain.attempts[0].failureClass).toBe('exception');
    expect(pretrain.attempts[1].loadedIteration).toBe(10);
    expect(pretrain.finalIteration).toBe(30);
    // One job, both node ranks in its log, both nodes wrote their shards (pp 2).
    const logs = fs.readdirSync(path.join(ws, 'gang', 'pretrain', 'logs')).filter((f) => f.endsWith('.log'));
    expect(logs).toHaveLength(2);
    const second = fs.readFileSync(path.join(ws, 'gang', 'pretrain', 'logs', logs.sort()[1]), 'utf8');
    expect(second).toMatch(/linkflow slurm task: node rank 0 of 2 on n\d \(master 127\.0\.0\.1:\d+\)/);
    expect(second).toMatch(/linkflow slurm task: node rank 1 of 2 on n\d/);
    expect(pretrain.attempts[1].node).toMatch(/^n\d,n\d$/);
    const saveDir = path.join(ws, 'gang', 'pretrain', 'checkpoints');
    expect(fs.readdirSync(path.join(saveDir, 'iter_0000030')).sort()).toEqual(['mp_rank_00_000', 'mp_rank_00_001']);
    expect(await squeueOf('gang')).toBe('');
  }, 300_000);

  async function trainedPast(handle: WorkflowHandle, iteration: number): Promise<void> {
    await until(
      `pretraining past iteration ${iteration}`,
      async () => {
        const snap = await snapshot(handle);
        return snap.live?.stage === 'pretrain' && (snap.live.iteration ?? 0) >= iteration ? true : undefined;
      },
      { timeoutMs: 180_000, everyMs: 300 },
    );
  }

  it('linkflow stop: the trainers save on SIGTERM, the job ends and no job is left', async () => {
    const dir = tempDir('slurm-stop');
    const ws = path.join(dir, 'ws');
    const spec = slurmSpec('stop', ws, { nodes: 2, trainIters: 400, env: { MLEMU_ITER_TIME_MS: '50' } });
    Object.assign(
      spec.stages.find((s) => s.name === 'pretrain')!,
      { saveInterval: 200 },
    );
    const handle = await startSpec(t, writeSpec(dir, spec));
    await trainedPast(handle, 20);
    await handle.signal(checkpointAndStopSignal);
    const { state } = await outcomeOf(handle);
    expect(state?.status).toBe('stopped');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.at(-1)!.outcome).toBe('stopped');
    // The stop save: an iteration past 20 that no interval save would have written.
    const saved = Number(fs.readFileSync(path.join(ws, 'stop', 'pretrain', 'checkpoints', 'latest_checkpointed_iteration.txt'), 'utf8'));
    expect(saved).toBeGreaterThanOrEqual(20);
    expect(saved).toBeLessThan(200);
    const log = fs.readFileSync(pretrain.attempts.at(-1)!.logFile!, 'utf8');
    expect(log).toMatch(/linkflow slurm task: asked to stop; SIGTERM to the launcher's 1 worker process/);
    expect(log).toMatch(/exiting program after receiving SIGTERM/);
    expect(await squeueOf('stop')).toBe('');
  }, 300_000);

  it('cancel leaves no job in squeue', async () => {
    const dir = tempDir('slurm-cancel');
    const ws = path.join(dir, 'ws');
    const handle = await startSpec(t, writeSpec(dir, slurmSpec('cancel', ws, { nodes: 2, trainIters: 2000, env: { MLEMU_ITER_TIME_MS: '50' } })));
    await trainedPast(handle, 5);
    expect(await squeueOf('cancel')).toMatch(/RUNNING/);
    await handle.cancel();
    const { failure } = await outcomeOf(handle);
    expect(failure).toMatch(/cancel/i);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    expect(await squeueOf('cancel')).toBe('');
    expect(processesMentioning(ws)).toEqual([]);
  }, 300_000);

  it("a job pending for lack of nodes shows Slurm's reason in status, then runs", async () => {
    // Every node busy with a job of someone else's.
    const blocker = path.join(cluster.dir, 'blocker.sh');
    fs.writeFileSync(blocker, '#!/bin/sh\nexec srun sleep 600\n', { mode: 0o755 });
    const blockerId = (await cluster.command(['sbatch', '--parsable', '--nodes=3', '--exclusive', '--output=/dev/null', blocker])).trim();
    const dir = tempDir('slurm-pending');
    const ws = path.join(dir, 'ws');
    const handle = await startSpec(t, writeSpec(dir, slurmSpec('pending', ws, { trainIters: 10 })));
    const queued = await until(
      'the first stage to wait in the queue',
      async () => {
        const snap = await snapshot(handle);
        // Slurm gives its reason at the scheduler's first pass over the job.
        return snap.live?.queued?.includes('(') ? snap.live.queued : undefined;
      },
      { timeoutMs: 120_000, everyMs: 300 },
    );
    expect(queued).toMatch(/^Slurm job \d+ queued \((Resources|Priority)\)$/);
    const status = await runCli(['status', handle.workflowId], { TEMPORAL_ADDRESS: t.server.address });
    expect(status.stdout).toMatch(/Slurm job \d+ queued \((Resources|Priority)\)/);
    await cluster.command(['scancel', blockerId]);
    const { state } = await outcomeOf(handle);
    expect(state?.status).toBe('succeeded');
  }, 300_000);

  it('a worker drain stops the job so it saves; the next attempt, on another worker, resumes from that save', async () => {
    const dir = tempDir('slurm-drain');
    const ws = path.join(dir, 'ws');
    const pool = `slurm-drain-${process.pid}`;
    const env = { SLURM_CONF: cluster.conf };
    const first = await startWorkerProcess(t.server.address, ['--queue', pool], workers, env);
    const spec = slurmSpec('drain', ws, { nodes: 2, trainIters: 300, env: { MLEMU_ITER_TIME_MS: '50' } });
    Object.assign(
      spec.stages.find((s) => s.name === 'pretrain')!,
      { saveInterval: 200 },
    );
    const handle = await startPipeline(t.client, t.config, planFile(writeSpec(dir, spec)), pool);
    await trainedPast(handle, 20);
    const exited = new Promise((resolve) => first.once('exit', resolve));
    first.kill('SIGTERM');
    await exited;
    // The worker waited for its job: nothing of it is left in Slurm.
    expect(await squeueOf('drain')).toBe('');
    const saved = Number(fs.readFileSync(path.join(ws, 'drain', 'pretrain', 'checkpoints', 'latest_checkpointed_iteration.txt'), 'utf8'));
    expect(saved).toBeGreaterThanOrEqual(20);
    expect(saved).toBeLessThan(200);
    await startWorkerProcess(t.server.address, ['--queue', pool], workers, env);
    const { state, failure } = await outcomeOf(handle);
    expect(failure).toBeUndefined();
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts[0].failureClass).toBe('killed');
    expect(pretrain.attempts.at(-1)!.loadedIteration).toBe(saved);
    expect(pretrain.finalIteration).toBe(300);
  }, 300_000);

  it("a job that reaches Slurm's time limit fails as time-limit and is retried", async () => {
    const dir = tempDir('slurm-timeout');
    const ws = path.join(dir, 'ws');
    // Slurm's shortest limit is a minute; the job would need 400 s.
    const spec = slurmSpec('timeout', ws, { trainIters: 4000, env: { MLEMU_ITER_TIME_MS: '100' }, slurm: { time: '1' } });
    const handle = await startSpec(t, writeSpec(dir, spec));
    const first = await until(
      'the first attempt to reach its time limit',
      async () => (await snapshot(handle)).state?.stages.find((s) => s.name === 'pretrain')?.attempts[0],
      { timeoutMs: 240_000, everyMs: 1000 },
    );
    expect(first.failureClass).toBe('time-limit');
    expect(first.reason).toMatch(/time limit \(TIMEOUT\); Slurm job \d+ on n\d/);
    // Retried: the next attempt is a new job.
    await until('the retry to run', async () => /RUNNING/.test(await squeueOf('timeout')), { timeoutMs: 60_000, everyMs: 500 });
    await handle.cancel();
    await outcomeOf(handle);
    expect(await squeueOf('timeout')).toBe('');
  }, 360_000);

  it("a preempted job is retried from the infrastructure budget, not the job's", async () => {
    const dir = tempDir('slurm-preempt');
    const ws = path.join(dir, 'ws');
    const spec = slurmSpec('preempt', ws, { trainIters: 60, env: { MLEMU_ITER_TIME_MS: '100' } });
    // One attempt of the job's budget: only the infrastructure budget can pay for the retry.
    Object.assign(
      spec.stages.find((s) => s.name === 'pretrain')!,
      { maxAttempts: 1 },
    );
    const handle = await startSpec(t, writeSpec(dir, spec));
    await trainedPast(handle, 15);
    // A job of a partition of higher priority tier needs every node: Slurm preempts (cancels) ours.
    const urgent = path.join(cluster.dir, 'urgent.sh');
    fs.writeFileSync(urgent, '#!/bin/sh\nexec srun sleep 3\n', { mode: 0o755 });
    await cluster.command(['sbatch', '--parsable', `--partition=${cluster.urgentPartition}`, '--nodes=3', '--exclusive', '--output=/dev/null', urgent]);
    const { state, failure } = await outcomeOf(handle);
    expect(failure).toBeUndefined();
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts[0].failureClass).toBe('preempted');
    expect(pretrain.attempts[0].reason).toMatch(/PREEMPTED/);
    expect(pretrain.attempts.at(-1)!.outcome).toBe('succeeded');
    expect(pretrain.finalIteration).toBe(60);
  }, 300_000);

  it('the nightly benchmark runs its cases as Slurm jobs when its suite says so', async () => {
    const dir = tempDir('slurm-bench');
    const file = path.join(dir, 'suite.json');
    const row = 'llama2-7b-seq4k-mcore-1x8-bf16';
    fs.writeFileSync(
      file,
      JSON.stringify({
        name: 'slurm-nightly',
        cluster: 'slurm-test',
        taskQueue: t.config.taskQueue,
        workspace: './bench',
        modellink: { root: EMULATOR, python: 'python3', launcher: path.join(EMULATOR, 'torchrun') },
        rows: [row],
        iterations: { warmup: 2, measured: 4 },
        slurm: { partition: cluster.partition, gresPerNode: 'npu:8' },
      }),
    );
    const handle = await t.client.workflow.start<BenchmarkWorkflow>(benchmarkWorkflowType, {
      workflowId: `slurm-bench-${Date.now()}`,
      taskQueue: t.config.taskQueue,
      args: [{ suite: loadSuite(file) }],
    });
    const outcome = (await handle.result()) as BenchmarkOutcome;
    expect(outcome.counts).toMatchObject({ failed: 0 });
    // The case's pretraining was a Slurm job, and it completed.
    const jobs = await cluster.command(['scontrol', 'show', 'job', '-o']);
    expect(jobs.split('\n').find((l) => l.includes(`JobName=linkflow.${row}.benchmark.1 `))).toMatch(/JobState=COMPLETED/);
  }, 300_000);

  it('a hang in a Slurm job is found as on node workers: the job is cancelled at once and the retry resumes', async () => {
    const dir = tempDir('slurm-hang');
    const ws = path.join(dir, 'ws');
    const spec = slurmSpec('hang', ws, { nodes: 2, env: { MLEMU_FAULTS: 'hang@15' } });
    Object.assign(
      spec.stages.find((s) => s.name === 'pretrain')!,
      { noProgressTimeout: '3s', noProgressFactor: 1 },
    );
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(failure).toBeUndefined();
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts[0].failureClass).toBe('hang');
    expect(pretrain.attempts.at(-1)!.loadedIteration).toBe(10);
    expect(pretrain.finalIteration).toBe(30);
    expect(fs.readFileSync(pretrain.attempts[0].logFile!, 'utf8')).toMatch(/linkflow: no progress for \d+ s during training/);
    expect(await squeueOf('hang')).toBe('');
  }, 300_000);

  // Last: the node it kills stays down.
  it('a node that dies under a running gang: NODE_FAIL is node-lost on that node, and the retry leaves it out', async () => {
    const dir = tempDir('slurm-nodefail');
    const ws = path.join(dir, 'ws');
    const handle = await startSpec(t, writeSpec(dir, slurmSpec('nodefail', ws, { nodes: 2, trainIters: 60, env: { MLEMU_ITER_TIME_MS: '100' } })));
    await trainedPast(handle, 15);
    const [, victim] = (await cluster.command(['squeue', '-h', '-o', '%j %N']))
      .split('\n')
      .find((l) => l.startsWith('linkflow.nodefail.pretrain.'))!
      .split(' ');
    const nodes = (await cluster.command(['scontrol', 'show', 'hostnames', victim])).trim().split('\n');
    // Not the batch host (the first node): a compute node of the gang dies.
    const dead = nodes[1];
    cluster.killNode(dead);
    const { state, failure } = await outcomeOf(handle);
    expect(failure).toBeUndefined();
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    const [lost, resumed] = pretrain.attempts;
    expect(lost.failureClass).toBe('node-lost');
    expect(lost.node).toBe(dead);
    expect(lost.reason).toMatch(new RegExp(`NODE_FAIL.*\\(node ${dead}\\)`));
    expect(resumed.outcome).toBe('succeeded');
    expect(resumed.node!.split(',')).not.toContain(dead);
    expect(fs.readFileSync(resumed.logFile!, 'utf8')).toMatch(new RegExp(`--exclude=${dead}`));
    expect(pretrain.finalIteration).toBe(60);
  }, 300_000);

  it('a worker SIGKILLed while its job runs leaves the job running; the next attempt adopts it and no iteration is lost', async () => {
    const queue = `slurm-adopt-${process.pid}`;
    const workerA = await startWorkerProcess(t.server.address, ['--queue', queue], workers);
    const config = fastRetryConfig(t.server.address, '4s');
    const client = await connectClient(config);
    const dir = tempDir('slurm-adopt');
    const ws = path.join(dir, 'ws');
    const spec = slurmSpec('adopt', ws, { trainIters: 300, env: { MLEMU_ITER_TIME_MS: '100' } });
    Object.assign(
      spec.stages.find((s) => s.name === 'pretrain')!,
      { saveInterval: 1000 },
    );
    const handle = await startPipeline(client, config, planFile(writeSpec(dir, spec)), queue);
    await trainedPast(handle, 15);
    const job = (await squeueOf('adopt')).split(' ')[0];
    workerA.kill('SIGKILL');
    await startWorkerProcess(t.server.address, ['--queue', queue], workers);
    const { state, failure } = await outcomeOf(handle);
    expect(state?.status, failure).toBe('succeeded');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    const logs = path.join(ws, 'adopt', 'pretrain', 'logs');
    const second = fs.readFileSync(
      path.join(
        logs,
        fs
          .readdirSync(logs)
          .filter((f) => f.endsWith('.log'))
          .sort()[1],
      ),
      'utf8',
    );
    expect(second).toContain(`# slurm: adopting job ${job} of an earlier attempt`);
    expect(second).not.toMatch(/submitted/);
    // The attempt that adopted the job names the job's own output (the first attempt's log), where its lines are.
    const first = fs
      .readdirSync(logs)
      .filter((f) => f.endsWith('.log'))
      .sort()[0];
    expect(pretrain.attempts[1].logFile).toBe(path.join(logs, first));
    // One job trained from the start to the end: no save before it (interval 1000), no restart.
    expect(fs.readdirSync(path.join(ws, 'adopt', 'pretrain', 'checkpoints')).filter((d) => d.startsWith('iter_'))).toEqual(['iter_0000300']);
    expect(pretrain.finalIteration).toBe(300);
    expect(await squeueOf('adopt')).toBe('');
    await client.connection.close();
  }, 300_000);
});
