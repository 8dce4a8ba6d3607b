/**
 * The Slurm executor against a real Slurm cluster on this machine (testkit/slurm.ts: munged,
 * slurmctld and three slurmd nodes n1..n3) and a real Temporal dev server: each attempt is one
 * Slurm job, the emulator's torchrun runs one task per node under srun, and the worker follows the
 * job through scontrol and its log on (this machine's) shared storage.
 */
import type { WorkflowHandle } from '@temporalio/client';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outcomeOf, snapshot } from '../client/pipeline.ts';
import { checkpointAndStopSignal } from '../contracts/workflows.ts';
import { slurmInstalled, startSlurmCluster, type SlurmCluster } from '../testkit/slurm.ts';
import { fiveStageSpec, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { runSpec, startSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { processesMentioning, until } from '../testkit/wait.ts';

let cluster: SlurmCluster;
let t: TestTemporal;
const savedConf = process.env.SLURM_CONF;

describe.skipIf(!slurmInstalled())('the Slurm executor on a real Slurm cluster', () => {
  beforeAll(async () => {
    cluster = await startSlurmCluster({ nodes: 3, npusPerNode: 8 });
    // The worker (in this process) submits with the client commands, which find the cluster here; sbatch passes it on to the jobs.
    process.env.SLURM_CONF = cluster.conf;
    t = await startTestTemporal();
  }, 180_000);

  afterAll(async () => {
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
});

export type { WorkflowHandle };
export { checkpointAndStopSignal, outcomeOf, snapshot, startSpec, until };
