/**
 * Training attempts resume from the newest complete checkpoint after a crash, a SIGKILL and a hang,
 * on a real Temporal dev server with the emulator.
 */
import fs from 'node:fs';
import YAML from 'yaml';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';
import { planFile, runSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { runCli } from '../testkit/cli.ts';
import { until } from '../testkit/wait.ts';
import { outcomeOf, snapshot, startPipeline } from '../client/pipeline.ts';
import { loadConfig } from '../temporal.config.ts';

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
});

/** Preprocess, convert and pretrain only: the fault is in pretraining. */
function pretrainSpec(name: string, faults: string, extra: { noProgressTimeout?: string; env?: Record<string, string>; trainIters?: number } = {}) {
  const dir = tempDir(name);
  const spec = fiveStageSpec(name, path.join(dir, 'ws'), {
    trainIters: extra.trainIters ?? 100,
    saveInterval: 10,
    pretrainEnv: { MLEMU_FAULTS: faults, ...extra.env },
    noProgressTimeout: extra.noProgressTimeout,
  });
  spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
  return writeSpec(dir, spec);
}

describe('training resumes from the newest complete checkpoint', () => {
  it('crash at iteration 35 with save interval 10: the second attempt loads 30 and finishes at 100 (via `linkflow run --json`)', async () => {
    const cli = await runCli(['run', pretrainSpec('crash', 'crash@35'), '--json'], {
      TEMPORAL_ADDRESS: t.config.address,
      LINKFLOW_TASK_QUEUE: t.config.taskQueue,
    });
    expect(cli.code, cli.stderr).toBe(0);
    const summary = JSON.parse(cli.stdout);
    expect(summary.status).toBe('succeeded');
    expect(summary.stages.find((s: { name: string }) => s.name === 'pretrain')).toMatchObject({
      kind: 'pretrain',
      status: 'succeeded',
      attempts: 2,
      resumedFrom: [30],
      finalIteration: 100,
    });
    expect(summary.stages.map((s: { name: string }) => s.name)).toEqual(['data', 'weights', 'pretrain']);
    const { state } = await outcomeOf(t.client.workflow.getHandle(summary.workflowId));
    if (!state) throw new Error('no state');
    expect(state.status).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(pretrain.attempts[0].failureClass).toBe('exception');
    expect(pretrain.attempts[0].excerpt?.join('\n')).toMatch(/Traceback/);
    expect(pretrain.attempts[1].loadedIteration).toBe(30);
    expect(pretrain.finalIteration).toBe(100);
    // At most one save interval is recomputed: the crash came after iteration 34 was logged, the resume loaded 30.
    const recomputed = pretrain.attempts[0].lastIteration! - pretrain.attempts[1].loadedIteration!;
    expect(recomputed).toBeGreaterThanOrEqual(0);
    expect(recomputed).toBeLessThanOrEqual(10);
    // The second attempt's log shows Megatron loading iteration 30 and continuing at 31.
    const log = fs.readFileSync(pretrain.attempts[1].logFile!, 'utf8');
    expect(log).toMatch(/successfully loaded checkpoint from .* at iteration 30/);
    expect(log).toMatch(/iteration\s+31\/\s+100 \|/);
    const saveDir = pretrain.output;
    expect(fs.readFileSync(path.join(saveDir, 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe('100');
    // linkflow advise reads this attempt log: one failure, measured save and recovery times.
    const advise = await runCli(['advise', summary.workflowId, '--json'], { TEMPORAL_ADDRESS: t.config.address });
    expect(advise.code, advise.stderr).toBe(0);
    const advice = JSON.parse(advise.stdout).stages.find((s: { stage: string }) => s.stage === 'pretrain');
    expect(advice.observed).toMatchObject({ failures: 1, saveInterval: 10 });
    expect(advice.observed.saveMs).toBeGreaterThan(0);
    expect(advice.observed.recoveryMs).toBeGreaterThan(0);
    expect(advice.advice.recommendedIterations).toBeGreaterThanOrEqual(1);
  });

  it('a worker killed with SIGKILL (the host’s OOM killer) on a two-device node: torchrun exits 1 with its ChildFailedError block, the attempt is killed, retried and resumes', async () => {
    const file = pretrainSpec('sigkill', 'sigkill@25');
    const spec = YAML.parse(fs.readFileSync(file, 'utf8'));
    spec.cluster = { ...spec.cluster, devicesPerNode: 2 };
    spec.parallel = { ...spec.parallel, tp: 1, pp: 2 };
    fs.writeFileSync(file, YAML.stringify(spec));
    const { state } = await runSpec(t, file);
    expect(state.status).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts[0].failureClass).toBe('killed');
    expect(pretrain.attempts[0].reason).toMatch(/^rank 0 was killed by SIGKILL/);
    // What decided it: torchrun's report of the worker, not its own traceback nor the peer's HCCL echo.
    expect(pretrain.attempts[0].excerpt?.join('\n')).toMatch(
      /exitcode {2}: -9 \(pid: \d+\)\n {2}error_file: <N\/A>\n {2}traceback : Signal 9 \(SIGKILL\) received by PID \d+/,
    );
    const log = fs.readFileSync(pretrain.attempts[0].logFile!, 'utf8');
    expect(log).toContain('torch.distributed.elastic.multiprocessing.errors.ChildFailedError');
    expect(log).toMatch(/HCCL AllReduce failed: lost the connection to remote rank \[0\]/);
    expect(pretrain.attempts[1].loadedIteration).toBe(20);
    expect(pretrain.finalIteration).toBe(100);
  });

  it('a hung trainer is killed after the no-progress window and resumes', async () => {
    const { state } = await runSpec(t, pretrainSpec('hang', 'hang@25', { noProgressTimeout: '3s' }));
    expect(state.status).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts[0].failureClass).toBe('hang');
    expect(pretrain.attempts[0].lastIteration).toBe(24);
    expect(pretrain.attempts[1].loadedIteration).toBe(20);
    expect(pretrain.finalIteration).toBe(100);
  });

  it('a slow checkpoint save is not mistaken for a hang', async () => {
    // Each save takes 2.5 s; the training window is 1 s, but a save in progress has its own (default 30 min).
    const { state } = await runSpec(t, pretrainSpec('slowsave', '', { noProgressTimeout: '1s', env: { MLEMU_SAVE_TIME_MS: '2500' }, trainIters: 20 }));
    expect(state.status).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts).toHaveLength(1);
    expect(pretrain.finalIteration).toBe(20);
  });

  it('collective timeouts (faults of the machines) do not use up the budget for errors of the job', async () => {
    // Two HCCL timeouts and a crash, with room for one retry of a job error (maxAttempts 2). An HCCL
    // notify-wait timeout (EI0002) says a peer never reached the collective: a hang, as in
    // https://github.com/vllm-project/vllm-ascend/issues/3413 (failures/corpus/hang/), not the network.
    const file = pretrainSpec('budgets', 'hccl@15,hccl@25,crash@35', { trainIters: 50 });
    const spec = YAML.parse(fs.readFileSync(file, 'utf8'));
    spec.stages.find((s: { kind: string }) => s.kind === 'pretrain').maxAttempts = 2;
    fs.writeFileSync(file, YAML.stringify(spec));
    const { state } = await runSpec(t, file);
    expect(state.status).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.failureClass ?? a.outcome)).toEqual(['hang', 'hang', 'exception', 'succeeded']);
    expect(pretrain.attempts.map((a) => a.loadedIteration)).toEqual([undefined, 10, 20, 30]);
    // Each attempt records what it redid: crash points 14, 24, 34 minus the checkpoints 10, 20, 30 it loaded.
    expect(pretrain.attempts.slice(1).map((a) => a.recomputed)).toEqual([4, 4, 4]);
    expect(pretrain.attempts[0].excerpt?.join('\n')).toMatch(/HCCL|EI0002/);
  });

  it('a second job error with maxAttempts 2 fails the stage even after infrastructure retries', async () => {
    const file = pretrainSpec('budgets2', 'hccl@15,crash@25,oom@35', { trainIters: 50 });
    const spec = YAML.parse(fs.readFileSync(file, 'utf8'));
    spec.stages.find((s: { kind: string }) => s.kind === 'pretrain').maxAttempts = 2;
    fs.writeFileSync(file, YAML.stringify(spec));
    const { state, failure } = await runSpec(t, file);
    expect(state.status).toBe('failed');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.failureClass)).toEqual(['hang', 'exception', 'out-of-memory']);
    expect(failure).toMatch(/after 2 job failures/);
  });

  it("a pipeline's own failure rule classifies a log line", async () => {
    const file = pretrainSpec('rules', 'crash@15', { trainIters: 20 });
    const spec = YAML.parse(fs.readFileSync(file, 'utf8'));
    // The emulator's crash text names the operator; call that a communication fault.
    spec.failureRules = [{ class: 'communication', pattern: 'current working operator name is MatMulV2' }];
    fs.writeFileSync(file, YAML.stringify(spec));
    const { state } = await runSpec(t, file);
    expect(state.stages.find((s) => s.name === 'pretrain')!.attempts[0].failureClass).toBe('communication');
  });

  it('an attempt waits while another trainer may still hold the save directory', async () => {
    const file = pretrainSpec('lease', '', { trainIters: 20 });
    const plan = planFile(file);
    const pretrain = plan.stages.find((s) => s.kind === 'pretrain')!;
    // A lease renewed just now by a trainer on another host (cut off from Temporal, still writing).
    fs.mkdirSync(pretrain.dir, { recursive: true });
    fs.writeFileSync(
      path.join(pretrain.dir, 'linkflow-lease.json'),
      JSON.stringify({ owner: 'other-run/attempt-3', host: 'elsewhere', pid: 1, renewedAt: Date.now() }),
    );
    const started = Date.now();
    const { state } = await runSpec(t, file);
    expect(state.status).toBe('succeeded');
    const attempt = state.stages.find((s) => s.name === 'pretrain')!.attempts[0];
    expect(fs.readFileSync(attempt.logFile!, 'utf8')).toContain('waited for the lease of other-run/attempt-3 (host elsewhere, pid 1)');
    // It waited for the lease to lapse: one heartbeat timeout (10 s in these tests).
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_000);
    expect(JSON.parse(fs.readFileSync(path.join(pretrain.dir, 'linkflow-lease.json'), 'utf8'))).toMatchObject({ released: true });
  });

  it('plans its resume under the lease: what the other trainer saved while the attempt waited is resumed from, not saved over', async () => {
    const file = pretrainSpec('lease-save', '', { trainIters: 10 });
    expect((await runSpec(t, file)).state.status).toBe('succeeded');
    const pretrain = planFile(file).stages.find((s) => s.kind === 'pretrain')!;
    const saveDir = pretrain.training!.saveDir;
    const written = fs.readdirSync(path.join(saveDir, 'iter_0000010'), { recursive: true, encoding: 'utf8' }).map((f) => path.join(saveDir, 'iter_0000010', f));
    const mtimes = written.map((f) => fs.statSync(f).mtimeMs);
    // Ten more iterations (the stage runs again), while a trainer on another host holds the lease and has not saved yet.
    const spec = YAML.parse(fs.readFileSync(file, 'utf8'));
    spec.stages.find((s: { name: string }) => s.name === 'pretrain').trainIters = 20;
    fs.writeFileSync(file, YAML.stringify(spec));
    const elsewhere = `${saveDir}.elsewhere`;
    fs.renameSync(saveDir, elsewhere);
    fs.writeFileSync(
      path.join(pretrain.dir, 'linkflow-lease.json'),
      JSON.stringify({ owner: 'other-run/attempt-1', host: 'elsewhere', pid: 1, renewedAt: Date.now() }),
    );
    const running = runSpec(t, file);
    // Its checkpoint lands while the attempt waits for the lease.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    fs.renameSync(elsewhere, saveDir);
    const { state } = await running;
    expect(state.status).toBe('succeeded');
    const attempt = state.stages.find((s) => s.name === 'pretrain')!.attempts[0];
    expect(fs.readFileSync(attempt.logFile!, 'utf8')).toContain('waited for the lease of other-run/attempt-1');
    expect(attempt.loadedIteration).toBe(10);
    expect(written.map((f) => fs.statSync(f).mtimeMs)).toEqual(mtimes);
    expect(state.stages.find((s) => s.name === 'pretrain')!.finalIteration).toBe(20);
  });

  it('a torn newest checkpoint: the attempt resumes from the previous complete one and says why', async () => {
    const file = pretrainSpec('torn', '', { trainIters: 30 });
    const first = await runSpec(t, file);
    expect(first.state.status).toBe('succeeded');
    const saveDir = first.state.stages.find((s) => s.name === 'pretrain')!.output;
    // A save that never finished: iteration 40's shard directory is empty, yet the tracker names it.
    fs.mkdirSync(path.join(saveDir, 'iter_0000040', 'mp_rank_00'), { recursive: true });
    fs.writeFileSync(path.join(saveDir, 'latest_checkpointed_iteration.txt'), '40');
    const spec = YAML.parse(fs.readFileSync(file, 'utf8'));
    spec.stages.find((s: { kind: string }) => s.kind === 'pretrain').trainIters = 50;
    fs.writeFileSync(file, YAML.stringify(spec));
    const { state } = await runSpec(t, file);
    expect(state.status).toBe('succeeded');
    const attempt = state.stages.find((s) => s.name === 'pretrain')!.attempts[0];
    expect(attempt.loadedIteration).toBe(30);
    expect(attempt.resumeNote).toMatch(/iter_0000040 is incomplete \(missing mp_rank_00\); resuming from iter_0000030/);
    expect(fs.readFileSync(attempt.logFile!, 'utf8')).toMatch(/successfully loaded checkpoint from .* at iteration 30/);
    // The checkpoint linkflow skipped is still there: nothing is deleted.
    expect(fs.existsSync(path.join(saveDir, 'iter_0000030', 'mp_rank_00', 'model_optim_rng.pt'))).toBe(true);
  });

  it('a long run continues as new, keeping its attempt log and budgets', async () => {
    const file = pretrainSpec('longrun', 'crash@5,crash@8,crash@11', { trainIters: 20 });
    const config = loadConfig({ ...t.config, retry: { ...t.config.retry, maximumAttempts: 5, continueAsNewAfterAttempts: 2 } }, {});
    const handle = await startPipeline(t.client, config, planFile(file));
    const firstRun = handle.firstExecutionRunId;
    const { state } = await outcomeOf(handle);
    expect(state?.status).toBe('succeeded');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.attempt)).toEqual([1, 2, 3, 4]);
    expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'failed', 'failed', 'succeeded']);
    expect(pretrain.finalIteration).toBe(20);
    const first = await t.client.workflow.getHandle(handle.workflowId, firstRun).describe();
    expect(first.status.name).toBe('CONTINUED_AS_NEW');
    // Stages finished before the hand-over are not run again.
    expect(state!.stages.find((s) => s.name === 'data')!.attempts).toHaveLength(1);
  });

  it('checkpoint now and stop: the trainer saves where it is, and a rerun goes on from there', async () => {
    const file = pretrainSpec('stop', '', { trainIters: 1000 });
    const spec = YAML.parse(fs.readFileSync(file, 'utf8'));
    spec.stages.find((s: { kind: string }) => s.kind === 'pretrain').exitSignalHandler = true;
    fs.writeFileSync(file, YAML.stringify(spec));
    const handle = await startPipeline(t.client, t.config, planFile(file));
    await until('training past iteration 15', async () => {
      const snap = await snapshot(handle);
      return snap.live?.stage === 'pretrain' && (snap.live.iteration ?? 0) >= 15;
    });
    const stop = await runCli(['stop', handle.workflowId], { TEMPORAL_ADDRESS: t.config.address });
    expect(stop.code, stop.stderr).toBe(0);
    const { state } = await outcomeOf(handle);
    expect(state?.status).toBe('stopped');
    const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.status).toBe('stopped');
    const stoppedAt = pretrain.attempts[0].lastIteration!;
    expect(pretrain.attempts[0].outcome).toBe('stopped');
    expect(fs.readFileSync(path.join(pretrain.output, 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe(String(stoppedAt));

    const rerun = await runSpec(t, file);
    expect(rerun.state.status).toBe('succeeded');
    // The rerun goes on counting: the stopped attempt is attempt 1, the one that resumed attempt 2.
    const attempts = rerun.state.stages.find((s) => s.name === 'pretrain')!.attempts;
    expect(attempts.map((a) => [a.attempt, a.outcome])).toEqual([
      [1, 'stopped'],
      [2, 'succeeded'],
    ]);
    const resumed = attempts[1];
    expect(resumed.loadedIteration).toBe(stoppedAt);
    expect(rerun.state.stages.find((s) => s.name === 'pretrain')!.finalIteration).toBe(1000);
  });

  it('a new save interval applies from the next attempt', async () => {
    // Slow iterations: the CLI's signal must land while the first attempt runs, even on a loaded machine.
    const file = pretrainSpec('interval', 'crash@25', { trainIters: 40, env: { MLEMU_ITER_TIME_MS: '250' } });
    const handle = await startPipeline(t.client, t.config, planFile(file));
    // Once the first training attempt is under way (its input, with the old interval, is fixed).
    await until('the first training attempt', async () => (await snapshot(handle)).state?.stages.find((s) => s.name === 'pretrain')?.status === 'running', {
      everyMs: 50,
    });
    const set = await runCli(['save-interval', handle.workflowId, '4'], { TEMPORAL_ADDRESS: t.config.address });
    expect(set.code, set.stderr).toBe(0);
    const { state } = await outcomeOf(handle);
    expect(state?.status).toBe('succeeded');
    const saveDir = state!.stages.find((s) => s.name === 'pretrain')!.output;
    const saved = fs
      .readdirSync(saveDir)
      .filter((d) => d.startsWith('iter_'))
      .sort();
    // The first attempt kept its interval (10, 20); the second, from 20, saved every 4.
    expect(saved).toEqual(['iter_0000010', 'iter_0000020', 'iter_0000024', 'iter_0000028', 'iter_0000032', 'iter_0000036', 'iter_0000040']);
  });

  it('autoSaveInterval: after a failure the next attempt saves at the interval Young/Daly recommend', async () => {
    const dir = tempDir('autointerval');
    const spec = fiveStageSpec('autointerval', path.join(dir, 'ws'), {
      trainIters: 80,
      saveInterval: 10,
      pretrainEnv: { MLEMU_FAULTS: 'crash@25', MLEMU_SAVE_TIME_MS: '300' },
    });
    spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
    Object.assign(
      spec.stages.find((s) => s.name === 'pretrain')!,
      { autoSaveInterval: true },
    );
    const { state } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    const advice = /save interval 10 → (\d+) iterations \(Young\/Daly/.exec(pretrain.attempts[0].saveIntervalAdvice ?? '');
    expect(advice, pretrain.attempts[0].saveIntervalAdvice).not.toBeNull();
    const interval = Number(advice![1]);
    expect(interval).not.toBe(10);
    // The second attempt ran with it.
    const argv = /# argv: (.*)/.exec(fs.readFileSync(pretrain.attempts[1].logFile!, 'utf8'))![1];
    const args = JSON.parse(argv) as string[];
    expect(args[args.indexOf('--save-interval') + 1]).toBe(String(interval));
    expect(pretrain.saveInterval).toBe(interval);
  });
});
