/** The Slurm executor's pure part (executors/slurm/plan.ts, slurm-rules.ts) and its spec: no cluster needed. */
import { describe, expect, it } from 'vitest';
import { planBenchmarkCase } from '../benchmark/plan.ts';
import { planSuite, suiteSchema } from '../benchmark/suite.ts';
import { renderPlan } from '../cli/render.ts';
import { launchOf, torchrunLaunch } from '../frameworks/launch.ts';
import { planPipeline } from '../plan/plan.ts';
import {
  BATCH_SCRIPT,
  exitStatusOf,
  jobEnding,
  jobInfo,
  jobPhase,
  nodesToAvoid,
  parseScontrolJob,
  retryExclusions,
  sbatchOptions,
  slurmLaunch,
} from '../executors/slurm/plan.ts';
import { fiveStageSpec, type RawSpec } from '../testkit/specs.ts';

function slurmSpec(cluster: Record<string, unknown>, slurm: Record<string, unknown> = { partition: 'npu' }): RawSpec {
  const spec = fiveStageSpec('s', '/tmp/ws');
  spec.cluster = { executor: 'slurm', nodes: 2, devicesPerNode: 8, slurm, ...cluster };
  spec.parallel = { tp: 1, pp: 2 };
  return spec;
}

function problemsOf(raw: unknown): string[] {
  const r = planPipeline(raw, { baseDir: '/tmp' });
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('the Slurm spec', () => {
  it('carries the settings into every stage plan; the default executor carries none', () => {
    const r = planPipeline(slurmSpec({}, { partition: 'npu', account: 'llm', qos: 'high', time: '2-00:00:00', gresPerNode: 'npu:8' }), { baseDir: '/tmp' });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    expect(r.plan.stages.every((s) => s.slurm?.partition === 'npu')).toBe(true);
    expect(r.plan.stages[0].slurm).toMatchObject({ account: 'llm', qos: 'high', time: '2-00:00:00', gresPerNode: 'npu:8' });
    const workers = planPipeline(fiveStageSpec('w', '/tmp/ws'), { baseDir: '/tmp' });
    expect(workers.ok && workers.plan.stages.some((s) => s.slurm)).toBe(false);
  });

  it('reports what can be checked before submission, each with its path', () => {
    expect(problemsOf(slurmSpec({}, {}))).toContain('cluster.slurm.partition: expected the Slurm partition the jobs are submitted to');
    expect(problemsOf(slurmSpec({}, { partition: 'npu', gresPerNode: 'npu:4' }))).toContain(
      'cluster.slurm.gresPerNode: asks for 4 devices per node, but each of the 2 nodes runs 8 processes (cluster.devicesPerNode); ask for at least 8',
    );
    expect(problemsOf(slurmSpec({}, { partition: 'npu', gresPerNode: 'eight' }))[0]).toMatch(/^cluster\.slurm\.gresPerNode: expected a generic resource/);
    expect(problemsOf(slurmSpec({}, { partition: 'npu', time: 'tomorrow' }))[0]).toMatch(/^cluster\.slurm\.time: expected a Slurm time limit/);
    expect(problemsOf(slurmSpec({}, { partition: 'npu', extraArgs: ['--exclusive', '--output=/x'] }))).toEqual([
      'cluster.slurm.extraArgs[1]: --output is set by linkflow for every job (its nodes, tasks, log and name); remove it',
    ]);
    expect(problemsOf(slurmSpec({}, { partition: 'npu', extraArgs: ['; rm -rf /'] }))[0]).toMatch(/^cluster\.slurm\.extraArgs\[0\]: expected an sbatch option/);
    expect(problemsOf(slurmSpec({ hosts: ['a', 'b'] }))).toContain(
      'cluster.hosts: Slurm places the jobs itself; use cluster.slurm.exclude or constraint instead of hosts',
    );
    expect(problemsOf(slurmSpec({ executor: 'workers' }))).toContain(
      'cluster.slurm: is only used with executor: slurm; add cluster.executor: slurm or remove it',
    );
    expect(problemsOf(slurmSpec({}, { partition: 'npu', gresPerNode: 'npu:8', exclude: ['n[01-02]'] }))).toEqual([]);
  });
});

describe('a Slurm submission', () => {
  const settings = { partition: 'npu', account: 'llm', time: '60', gresPerNode: 'npu:8', constraint: 'a2', exclude: ['bad1'], extraArgs: ['--exclusive'] };

  it('asks for the launch nodes, one task each, the attempt log as output, and no requeue', () => {
    const input = { settings, nodes: 2, jobName: 'linkflow.p.pretrain.3', logFile: '/ws/p/pretrain/logs/a.log', cwd: '/opt/ModelLink', exclude: ['n7'] };
    // Preprocessing and conversion run on the host's CPUs: no devices asked for.
    expect(sbatchOptions({ ...input, nodes: 1, usesDevices: false })).not.toContain('--gres=npu:8');
    expect(sbatchOptions({ ...input, usesDevices: true })).toEqual([
      '--parsable',
      '--job-name=linkflow.p.pretrain.3',
      '--partition=npu',
      '--account=llm',
      '--time=60',
      '--nodes=2',
      '--ntasks-per-node=1',
      '--gres=npu:8',
      '--constraint=a2',
      '--exclude=bad1,n7',
      '--chdir=/opt/ModelLink',
      '--output=/ws/p/pretrain/logs/a.log',
      '--open-mode=append',
      '--no-requeue',
      '--exclusive',
    ]);
  });

  it('has a constant batch script: the stage reaches srun as arguments only', () => {
    expect(BATCH_SCRIPT).toBe(
      '#!/bin/sh\n# linkflow: constant text. Everything of the stage arrives as arguments ("$@"), never as shell text (executors/slurm/plan.ts).\nexec srun --ntasks-per-node=1 --kill-on-bad-exit=1 "$@"\n',
    );
  });

  it('leaves each node its rank and the rendezvous from the job', () => {
    const launch = torchrunLaunch(['torchrun'], { nprocPerNode: 8, nnodes: 2, nodeRank: 0, masterAddr: 'localhost', masterPort: 6000 });
    expect(slurmLaunch(launch)).toMatchObject({
      nnodes: 2,
      nprocPerNode: 8,
      nodeRank: '${SLURM_NODEID}',
      masterAddr: '${LINKFLOW_MASTER_ADDR}',
      masterPort: '${LINKFLOW_MASTER_PORT}',
    });
    expect(slurmLaunch({ kind: 'python', program: ['python'] })).toEqual({ kind: 'python', program: ['python'] });
  });

  it('is shown by render: options, script and the command each node runs', () => {
    const r = planPipeline(slurmSpec({}, { partition: 'npu', gresPerNode: 'npu:8' }), { baseDir: '/tmp' });
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const text = renderPlan(r.plan, 'sh');
    expect(text).toContain('# slurm: sbatch --parsable --job-name=linkflow.s.pretrain.1 --partition=npu --nodes=2 --ntasks-per-node=1 --gres=npu:8');
    expect(text).toContain('# slurm: sbatch --parsable --job-name=linkflow.s.data.1 --partition=npu --nodes=1 --ntasks-per-node=1 --chdir=');
    expect(text).toContain('#   exec srun --ntasks-per-node=1 --kill-on-bad-exit=1 "$@"');
    expect(text).toMatch(/--nnodes 2 --node_rank '\$\{SLURM_NODEID\}' --master_addr '\$\{LINKFLOW_MASTER_ADDR\}'/);
    expect(launchOf(r.plan.stages[3]).kind).toBe('torchrun');
  });
});

describe("Slurm's word on a job", () => {
  it('reads scontrol and sacct into a state, reason, exit code and nodes', () => {
    const line =
      'JobId=12 JobName=linkflow.p.pretrain.1 UserId=root(0) JobState=PENDING Reason=Resources Dependency=(null) ExitCode=0:0 NodeList=(null) BatchHost=n1';
    expect(jobInfo(parseScontrolJob(line))).toEqual({ state: 'PENDING', reason: 'Resources', exitCode: 0, signal: 0, nodeList: undefined });
    expect(jobInfo({ JobState: 'CANCELLED by 0', ExitCode: '0:15', NodeList: 'n[1-2]' })).toMatchObject({ state: 'CANCELLED', signal: 15, nodeList: 'n[1-2]' });
    expect(jobPhase('PENDING')).toBe('queued');
    expect(jobPhase('COMPLETING')).toBe('running');
    expect(jobPhase('NODE_FAIL')).toBe('ended');
  });

  it('maps endings to failure classes; a job failure is classified from its log', () => {
    const end = (state: string, ours = false) => jobEnding({ state }, ours);
    expect(end('NODE_FAIL')).toMatchObject({ kind: 'class', class: 'node-lost' });
    expect(end('TIMEOUT')).toMatchObject({ kind: 'class', class: 'time-limit' });
    expect(end('PREEMPTED')).toMatchObject({ kind: 'class', class: 'preempted' });
    expect(end('OUT_OF_MEMORY')).toMatchObject({ kind: 'class', class: 'out-of-memory' });
    expect(end('FAILED')).toEqual({ kind: 'exit' });
    expect(end('COMPLETED')).toEqual({ kind: 'exit' });
    expect(end('CANCELLED', true)).toEqual({ kind: 'exit' });
    expect(end('CANCELLED')).toMatchObject({ kind: 'class', class: 'killed' });
    expect(exitStatusOf({ state: 'FAILED', exitCode: 1, signal: 0 })).toEqual({ exitCode: 1, signal: null });
    expect(exitStatusOf({ state: 'CANCELLED', exitCode: 0, signal: 9 })).toEqual({ exitCode: null, signal: 'SIGKILL' });
  });

  it('a retry leaves out the nodes lost before, only while the partition keeps enough others', () => {
    expect(
      nodesToAvoid([
        { failureClass: 'node-lost', node: 'n2' },
        { failureClass: 'exception', node: 'n1' },
        { failureClass: 'node-lost', node: 'n1,n2' },
      ]),
    ).toEqual(['n2']);
    expect(retryExclusions(['n2'], ['n1', 'n2', 'n3'], 2)).toEqual(['n2']);
    expect(retryExclusions(['n2'], ['n1', 'n2'], 2)).toEqual([]);
    expect(retryExclusions(['n2', 'n3'], ['n1', 'n2', 'n3'], 2)).toEqual(['n2']);
    expect(retryExclusions(['n9'], ['n1', 'n2'], 1)).toEqual([]);
  });
});

describe('the nightly benchmark on Slurm', () => {
  it('runs its cases as Slurm jobs when the suite says so, else on node workers', () => {
    const base = { name: 'nightly', rows: ['llama2-7b-seq4k-mcore-1x8-bf16'], modellink: { root: '/opt/ModelLink' } };
    const onSlurm = suiteSchema.parse({ ...base, slurm: { partition: 'npu', gresPerNode: 'npu:8' } });
    const [c] = planSuite(onSlurm);
    const planned = planBenchmarkCase(onSlurm, c, { runDir: '/tmp/bench/run' });
    if (!planned.ok) throw new Error(planned.reason);
    expect(planned.plan.stages[0].slurm).toEqual({ partition: 'npu', gresPerNode: 'npu:8' });
    const workers = suiteSchema.parse(base);
    const plain = planBenchmarkCase(workers, planSuite(workers)[0], { runDir: '/tmp/bench/run' });
    expect(plain.ok && plain.plan.stages[0].slurm).toBe(undefined);
  });
});
