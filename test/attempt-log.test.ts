/**
 * `run --json` and `status --json` say why each attempt ended: every stage carries `attemptLog`, one
 * entry per attempt, with the fields that have a value. Through the CLI, on a real dev server, with a
 * pipeline that crashes and resumes.
 */
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';
import { startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { runCli } from '../testkit/cli.ts';

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
});

interface StageJson {
  name: string;
  attemptLog: Record<string, unknown>[];
}

describe('attemptLog in the JSON', () => {
  it('a crash at 35 and the resume from 30: each attempt with its class, reason, iterations and node', async () => {
    const dir = tempDir('attempt-log');
    const spec = fiveStageSpec('attempt-log', path.join(dir, 'ws'), { trainIters: 60, saveInterval: 10, pretrainEnv: { MLEMU_FAULTS: 'crash@35' } });
    spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
    const env = { TEMPORAL_ADDRESS: t.config.address, LINKFLOW_TASK_QUEUE: t.config.taskQueue };
    const run = await runCli(['run', writeSpec(dir, spec), '--json'], env);
    expect(run.code, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout) as { workflowId: string; stages: StageJson[] };
    const log = summary.stages.find((s) => s.name === 'pretrain')!.attemptLog;
    expect(log).toHaveLength(2);
    const [crashed, resumed] = log;
    // Started from the converted weights: no loadedIteration, no recomputed; absent fields are left out.
    expect(Object.keys(crashed).sort()).toEqual(['attempt', 'failureClass', 'lastIteration', 'node', 'outcome', 'reason']);
    expect(crashed).toMatchObject({ attempt: 1, outcome: 'failed', failureClass: 'exception', node: os.hostname() });
    expect(crashed.reason).toEqual(expect.any(String));
    expect(crashed.lastIteration).toBeGreaterThanOrEqual(34);
    expect(resumed).toMatchObject({ attempt: 2, outcome: 'succeeded', loadedIteration: 30, lastIteration: 60, node: os.hostname() });
    expect(resumed.recomputed).toBe((crashed.lastIteration as number) - 30);
    expect(resumed).not.toHaveProperty('failureClass');
    expect(resumed).not.toHaveProperty('reason');
    // Stages that ran once: one entry.
    expect(summary.stages.find((s) => s.name === 'data')!.attemptLog).toEqual([{ attempt: 1, outcome: 'succeeded', node: os.hostname() }]);

    const status = await runCli(['status', summary.workflowId, '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    expect((JSON.parse(status.stdout) as { stages: StageJson[] }).stages.find((s) => s.name === 'pretrain')!.attemptLog).toEqual(log);
  }, 240_000);
});
