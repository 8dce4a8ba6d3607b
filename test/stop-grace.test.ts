/**
 * Stop, cancel and drain let a checkpoint save finish: the grace between SIGTERM and SIGKILL follows
 * the attempt's measured saves (plan/stop-grace.ts), SIGTERM goes to the launcher's workers and
 * not to torchrun's agent (executors/nodes/io/supervisor.mjs), and training stages pass --exit-signal-handler
 * so that a stop saves even with high availability alone. Pipelines on a real dev server with the emulator.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startProcess } from '../executors/nodes/io/process-group.ts';
import { EXIT_MS, stopGraceMs, UNMEASURED_SAVE_MS } from '../plan/stop-grace.ts';
import { isElasticAgent, launchesElasticAgent, pythonLaunch, torchrunLaunch } from '../frameworks/launch.ts';
import { outcomeOf, snapshot, startPipeline } from '../client/pipeline.ts';
import { fiveStageSpec, ROOT, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { planFile, runSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { runCli } from '../testkit/cli.ts';
import { until } from '../testkit/wait.ts';
import { spawnGroup } from '../testkit/processes.ts';

describe('the stop grace', () => {
  it('is the measured save (with a margin) plus one iteration, bounded by checkpointTimeout', () => {
    const timeout = 30 * 60_000;
    expect(stopGraceMs({ longestSaveMs: 15_000, msPerIteration: 2_000, checkpointTimeoutMs: timeout })).toBe(15_000 * 1.5 + 2_000 + EXIT_MS);
    // During an interval save the stop save follows it.
    expect(stopGraceMs({ longestSaveMs: 15_000, msPerIteration: 2_000, savingNow: true, checkpointTimeoutMs: timeout })).toBe(
      2 * 15_000 * 1.5 + 2_000 + EXIT_MS,
    );
    expect(stopGraceMs({ longestSaveMs: 20 * 60_000, msPerIteration: 2_000, checkpointTimeoutMs: timeout })).toBe(timeout);
    // Before any save was measured, a save is assumed to take minutes.
    expect(stopGraceMs({ msPerIteration: 500, checkpointTimeoutMs: timeout })).toBe(UNMEASURED_SAVE_MS + 500 + EXIT_MS);
    // A quick save still leaves the old fixed grace for the exit, unless checkpointTimeout itself is shorter.
    expect(stopGraceMs({ longestSaveMs: 100, msPerIteration: 10, checkpointTimeoutMs: timeout })).toBe(150 + 10 + EXIT_MS);
    expect(stopGraceMs({ longestSaveMs: 100, checkpointTimeoutMs: 3_000 })).toBe(3_000);
  });
});

/** A launcher like torchrun's agent: it starts workers, waits for them and exits as they did. It records any SIGTERM it gets. */
const FAKE_AGENT = `
import os, signal, subprocess, sys
marks = sys.argv[1]
signal.signal(signal.SIGTERM, lambda *_: open(os.path.join(marks, 'agent-sigterm'), 'w').close())
WORKER = '''
import os, signal, sys, time
marks, rank = sys.argv[1], sys.argv[2]
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
open(os.path.join(marks, 'worker-%s-up' % rank), 'w').close()
while not stop:
    time.sleep(0.05)
time.sleep(2)  # a checkpoint save
open(os.path.join(marks, 'worker-%s-saved' % rank), 'w').close()
'''
workers = [subprocess.Popen([sys.executable, '-c', WORKER, marks, str(r)]) for r in range(2)]
sys.exit(max(w.wait() for w in workers))
`;

/** A launcher that runs the job in its own process (no agent above it): it is the one to signal. */
const LONE_LAUNCHER = `
import os, signal, sys, time
marks = sys.argv[1]
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
open(os.path.join(marks, 'lone-up'), 'w').close()
while not stop:
    time.sleep(0.05)
open(os.path.join(marks, 'lone-sigterm'), 'w').close()
`;

describe('whom a stop signals', () => {
  it('the workers only under torch’s elastic agent; any other launcher is the trainer itself', () => {
    expect(isElasticAgent(['torchrun'])).toBe(true);
    expect(isElasticAgent(['/opt/linkflow/emulator/torchrun'])).toBe(true);
    expect(isElasticAgent(['python', '-m', 'torch.distributed.launch'])).toBe(true);
    expect(isElasticAgent(['python3', '-m', 'torch.distributed.run'])).toBe(true);
    expect(isElasticAgent(['python'])).toBe(false);
    expect(isElasticAgent([])).toBe(false);
    // The decision reads the planned launch: set once from its program, never from a rendered argv.
    const rendezvous = { nprocPerNode: 8, nnodes: 2, nodeRank: 0, masterAddr: 'localhost', masterPort: 6000 };
    expect(launchesElasticAgent(torchrunLaunch(['python', '-m', 'torch.distributed.launch'], rendezvous))).toBe(true);
    expect(launchesElasticAgent(torchrunLaunch(['/opt/wrap/launch.sh'], rendezvous))).toBe(false);
    expect(launchesElasticAgent(pythonLaunch('python3'))).toBe(false);
  });

  it('SIGTERM goes to the launcher’s workers, not to the agent, which then ends as they did', async () => {
    const dir = tempDir('stop-workers');
    const marks = path.join(dir, 'marks');
    fs.mkdirSync(marks);
    fs.writeFileSync(path.join(dir, 'agent.py'), FAKE_AGENT);
    const proc = startProcess({
      argv: ['python3', path.join(dir, 'agent.py'), marks],
      cwd: dir,
      env: process.env,
      logFile: path.join(dir, 'log'),
      stopSignalTo: 'workers',
    });
    // A failed test leaves no launcher behind (its own process group, killed whole).
    onTestFinished(() => proc.kill(0));
    await until('both workers up', async () => fs.existsSync(path.join(marks, 'worker-0-up')) && fs.existsSync(path.join(marks, 'worker-1-up')), {
      timeoutMs: 30_000,
    });
    const t0 = Date.now();
    await proc.kill(20_000);
    expect(Date.now() - t0).toBeLessThan(20_000); // ended by itself, not by SIGKILL
    expect(await proc.exited).toEqual({ exitCode: 0, signal: null });
    expect(fs.readdirSync(marks).sort()).toEqual(['worker-0-saved', 'worker-0-up', 'worker-1-saved', 'worker-1-up']);
    expect(fs.readFileSync(path.join(dir, 'log'), 'utf8')).toMatch(/SIGTERM to the launcher's 2 worker processes/);
  });

  it('a launcher without child processes gets the SIGTERM itself', async () => {
    const dir = tempDir('stop-lone');
    const marks = path.join(dir, 'marks');
    fs.mkdirSync(marks);
    fs.writeFileSync(path.join(dir, 'lone.py'), LONE_LAUNCHER);
    const proc = startProcess({
      argv: ['python3', path.join(dir, 'lone.py'), marks],
      cwd: dir,
      env: process.env,
      logFile: path.join(dir, 'log'),
      stopSignalTo: 'workers',
    });
    // A failed test leaves no launcher behind (its own process group, killed whole).
    onTestFinished(() => proc.kill(0));
    await until('the launcher up', async () => fs.existsSync(path.join(marks, 'lone-up')), { timeoutMs: 30_000 });
    await proc.kill(20_000);
    expect(await proc.exited).toEqual({ exitCode: 0, signal: null });
    expect(fs.existsSync(path.join(marks, 'lone-sigterm'))).toBe(true);
  });
});

/** A trainer that, on SIGTERM, takes 3 s to save before it exits. */
const SLOW_SAVER = `
import os, signal, sys, time
marks = sys.argv[1]
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
open(os.path.join(marks, 'up'), 'w').close()
while not stop:
    time.sleep(0.05)
time.sleep(3)
open(os.path.join(marks, 'saved'), 'w').close()
`;

describe('a worker that dies', () => {
  it('its trainer is stopped with the latest grace the worker gave the supervisor, not the one it started with', async () => {
    const dir = tempDir('lifeline-grace');
    const marks = path.join(dir, 'marks');
    fs.mkdirSync(marks);
    fs.writeFileSync(path.join(dir, 'saver.py'), SLOW_SAVER);
    // Started with a 1 s grace, raised to 20 s: the 3 s save must finish.
    const worker = spawnGroup(
      process.execPath,
      [
        '--import',
        'tsx',
        path.join(ROOT, 'test', 'fixtures', 'start-with-grace.ts'),
        path.join(dir, 'log'),
        '1000',
        '20000',
        'python3',
        path.join(dir, 'saver.py'),
        marks,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await until('the trainer up', async () => fs.existsSync(path.join(marks, 'up')), { timeoutMs: 30_000 });
    worker.kill('SIGKILL');
    // With the 1 s it started with, the group would be SIGKILLed two seconds before the save ends.
    await until('the trainer saved', async () => fs.existsSync(path.join(marks, 'saved')), { timeoutMs: 15_000 });
  });
});

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
});

/** Preprocess, convert and a long pretraining whose saves take `saveMs`. */
function pretrainSpec(name: string, saveMs: number, patch: (spec: RawSpec) => void = () => undefined): { file: string; spec: RawSpec; dir: string } {
  const dir = tempDir(name);
  const spec = fiveStageSpec(name, path.join(dir, 'ws'), { trainIters: 200, saveInterval: 10, pretrainEnv: { MLEMU_SAVE_TIME_MS: String(saveMs) } });
  spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
  patch(spec);
  return { file: writeSpec(dir, spec), spec, dir };
}

/** Stops the pipeline once training is past `iteration`; returns the stopped attempt's last iteration and the save directory. */
async function stopPast(file: string, iteration: number): Promise<{ stoppedAt: number; saveDir: string; log: string }> {
  const handle = await startPipeline(t.client, t.config, planFile(file));
  await until(
    `training past iteration ${iteration}`,
    async () => {
      const snap = await snapshot(handle);
      return snap.live?.stage === 'pretrain' && (snap.live.iteration ?? 0) >= iteration;
    },
    { timeoutMs: 180_000 },
  );
  const stop = await runCli(['stop', handle.workflowId], { TEMPORAL_ADDRESS: t.config.address });
  expect(stop.code, stop.stderr).toBe(0);
  const { state } = await outcomeOf(handle);
  expect(state?.status).toBe('stopped');
  const pretrain = state!.stages.find((s) => s.name === 'pretrain')!;
  expect(pretrain.attempts[0].outcome).toBe('stopped');
  return { stoppedAt: pretrain.attempts[0].lastIteration!, saveDir: pretrain.output, log: fs.readFileSync(pretrain.attempts[0].logFile!, 'utf8') };
}

const tracker = (saveDir: string) => fs.readFileSync(path.join(saveDir, 'latest_checkpointed_iteration.txt'), 'utf8').trim();

/** The rerun (with fast saves: only the resume point matters) loads the stop's checkpoint. */
async function rerunLoads(file: string, spec: RawSpec, stoppedAt: number): Promise<void> {
  const pretrain = spec.stages.find((s) => s.name === 'pretrain')!;
  Object.assign(pretrain, { trainIters: stoppedAt + 5, env: {} });
  fs.writeFileSync(file, (await import('yaml')).stringify(spec));
  const rerun = await runSpec(t, file);
  expect(rerun.state.status, rerun.failure).toBe('succeeded');
  const stage = rerun.state.stages.find((s) => s.name === 'pretrain')!;
  // The rerun's attempt follows the stopped one in the count.
  expect(stage.attempts[0].outcome).toBe('stopped');
  expect(stage.attempts.at(-1)!.attempt).toBe(stage.attempts.length);
  expect(stage.attempts.at(-1)!.loadedIteration).toBe(stoppedAt);
  expect(stage.finalIteration).toBe(stoppedAt + 5);
}

describe('linkflow stop saves a checkpoint that takes longer than the old fixed 10 s grace', () => {
  it('saves of 15 s: the checkpoint of the stop iteration is complete and the rerun resumes from it', async () => {
    const { file, spec } = pretrainSpec('slow-save', 15_000);
    // Past the first interval save (iteration 10), so its time was measured.
    const { stoppedAt, saveDir } = await stopPast(file, 12);
    expect(stoppedAt).toBeGreaterThan(10);
    expect(tracker(saveDir)).toBe(String(stoppedAt));
    expect(fs.readdirSync(path.join(saveDir, `iter_${String(stoppedAt).padStart(7, '0')}`))).toEqual(['mp_rank_00']);
    await rerunLoads(file, spec, stoppedAt);
  }, 300_000);
});

describe('stop and drain do not rely on high availability saving on SIGTERM', () => {
  it('high availability alone (no exitSignalHandler in the spec): the stop still saves, because linkflow passes --exit-signal-handler', async () => {
    const { file, spec } = pretrainSpec('ha-stop', 0, (s) => {
      // Two devices: the replica optimizer needs a data-parallel size divisible by 2.
      s.cluster = { nodes: 1, devicesPerNode: 2 };
      Object.assign(s, { highAvailability: { enabled: true } });
      // No interval save before the end: the only checkpoint is the stop's.
      Object.assign(
        s.stages.find((st) => st.name === 'pretrain')!,
        { trainIters: 5000, saveInterval: 5000 },
      );
    });
    const { stoppedAt, saveDir, log } = await stopPast(file, 15);
    expect(log).toContain('--exit-signal-handler');
    expect(log).toContain('exiting program after receiving SIGTERM.');
    expect(tracker(saveDir)).toBe(String(stoppedAt));
    await rerunLoads(file, spec, stoppedAt);
  }, 300_000);
});
