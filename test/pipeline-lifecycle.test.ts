/**
 * A whole pipeline on a real Temporal dev server with the emulator: all five kinds of stage,
 * outputs and manifests on disk, reruns that skip what is done, cancellation, and a
 * deterministic failure that is not retried.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { snapshot } from '../client/pipeline.ts';
import { progressQuery } from '../contracts/workflows.ts';
import { DEMO, fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';
import { runSpec, startSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';
import { runCli } from '../testkit/cli.ts';
import { processesMentioning } from '../testkit/wait.ts';

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
});

describe('a pipeline of every stage kind', () => {
  it('succeeds with outputs and manifests on disk, and a rerun skips every stage', async () => {
    const dir = tempDir('five');
    const ws = path.join(dir, 'ws');
    const specFile = writeSpec(dir, fiveStageSpec('five', ws, { trainIters: 30 }));
    const { state } = await runSpec(t, specFile);
    expect(state.status).toBe('succeeded');
    expect(state.stages.map((s) => [s.name, s.status, s.attempts.length])).toEqual([
      ['data', 'succeeded', 1],
      ['sft-data', 'succeeded', 1],
      ['weights', 'succeeded', 1],
      ['pretrain', 'succeeded', 1],
      ['finetune', 'succeeded', 1],
      ['evaluate', 'succeeded', 1],
      ['generate', 'succeeded', 1],
    ]);
    const out = (name: string) => state.stages.find((s) => s.name === name)!.output;
    expect(fs.existsSync(`${out('data')}.bin`) && fs.existsSync(`${out('data')}.idx`)).toBe(true);
    expect(
      fs
        .readFileSync(`${out('data')}.idx`)
        .subarray(0, 9)
        .toString('latin1'),
    ).toBe('MMIDIDX\0\0');
    expect(fs.existsSync(`${out('sft-data')}_packed_input_ids_document.bin`)).toBe(true);
    expect(fs.readFileSync(path.join(out('weights'), 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe('1');
    expect(fs.existsSync(path.join(out('pretrain'), 'iter_0000030', 'mp_rank_00', 'model_optim_rng.pt'))).toBe(true);
    expect(fs.readFileSync(path.join(out('finetune'), 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe('20');
    const results = JSON.parse(fs.readFileSync(out('evaluate'), 'utf8'));
    expect(results.results[0]).toMatchObject({ task: 'mmlu' });
    expect(results.results[0].total).toBeGreaterThan(0);
    for (const s of state.stages) {
      const manifest = JSON.parse(fs.readFileSync(path.join(ws, 'five', s.name, 'manifest.json'), 'utf8'));
      expect(manifest.stage).toBe(s.name);
      expect(manifest.fingerprint).toMatch(/^[0-9a-f]{64}$/);
    }
    const generated = fs
      .readdirSync(out('generate'))
      .map((f) => fs.readFileSync(path.join(out('generate'), f), 'utf8'))
      .join('');
    expect(generated).toContain('inference.py');
    // chat was asked its prompt on standard input (one turn, then exit) and ended cleanly.
    expect(generated.split('You >> ').length - 1).toBe(2);
    // Every attempt's output went to a log file under the workspace.
    expect(fs.readdirSync(path.join(ws, 'five', 'pretrain', 'logs')).length).toBe(1);

    const again = await runSpec(t, specFile);
    expect(again.state.status).toBe('succeeded');
    expect(again.state.stages.map((s) => s.status)).toEqual(Array(7).fill('skipped'));
    expect(again.state.stages.every((s) => s.attempts.length === 0)).toBe(true);
  });

  it('converts across the matrix on the emulator without writing into the HF directory', async () => {
    const dir = tempDir('convert');
    const hf = path.join(dir, 'hf-model');
    fs.cpSync(path.join(DEMO, 'hf-tiny'), hf, { recursive: true });
    const spec = fiveStageSpec('convert', path.join(dir, 'ws'));
    spec.stages = [
      { name: 'weights', kind: 'convert', from: hf },
      { name: 'legacy', kind: 'convert', from: 'weights', to: 'legacy' },
      { name: 'back', kind: 'convert', from: 'legacy', to: 'mcore' },
      { name: 'export', kind: 'convert', from: 'back', to: 'hf', hfDir: hf },
    ];
    const { state } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status, JSON.stringify(state.stages.map((s) => s.attempts))).toBe('succeeded');
    for (const name of ['weights', 'legacy', 'back']) {
      const out = state.stages.find((s) => s.name === name)!.output;
      expect(fs.existsSync(path.join(out, 'latest_checkpointed_iteration.txt')), name).toBe(true);
    }
    const exported = state.stages.find((s) => s.name === 'export')!.output;
    expect(fs.existsSync(path.join(exported, 'config.json'))).toBe(true);
    expect(fs.existsSync(path.join(hf, 'mg2hf'))).toBe(false);
  });

  it('weights of another TP/PP layout are refused before launch, naming the shards found', async () => {
    const dir = tempDir('layout');
    const spec = fiveStageSpec('layout', path.join(dir, 'ws'), { trainIters: 10 });
    const resharded = path.join(dir, 'ws', 'layout', 'tp2', 'weights');
    spec.stages = [
      spec.stages[0],
      { name: 'tp2', kind: 'convert', from: path.join(DEMO, 'hf-tiny'), tp: 2 },
      // The path (not the stage name) of TP 2 weights, loaded by a TP 1 stage.
      { ...spec.stages[3], load: resharded },
    ];
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status).toBe('failed');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts).toHaveLength(1);
    expect(pretrain.attempts[0].failureClass).toBe('missing-input');
    expect(failure).toContain('holds shards mp_rank_00, mp_rank_01 at iter_0000001, not the TP 1 × PP 1 layout');
  });

  it('after a failed evaluate stage, a rerun runs only evaluate', async () => {
    const dir = tempDir('evalfail');
    const evalData = path.join(dir, 'mmlu', 'test');
    const spec = fiveStageSpec('evalfail', path.join(dir, 'ws'), { trainIters: 20 });
    spec.stages = spec.stages.filter((s) => s.name !== 'finetune' && s.name !== 'sft-data' && s.kind !== 'inference');
    spec.stages[3] = { name: 'evaluate', kind: 'evaluate', load: 'pretrain', tasks: [{ name: 'mmlu', dataPath: evalData }] };
    const specFile = writeSpec(dir, spec);

    const first = await runSpec(t, specFile);
    expect(first.state.status).toBe('failed');
    const evaluate = first.state.stages.find((s) => s.name === 'evaluate')!;
    expect(evaluate.status).toBe('failed');
    expect(evaluate.attempts).toHaveLength(1);
    expect(evaluate.attempts[0].failureClass).toBe('missing-input');
    expect(first.failure).toContain(evalData);

    fs.mkdirSync(evalData, { recursive: true });
    for (const f of fs.readdirSync(path.join(DEMO, 'mmlu', 'test'))) fs.copyFileSync(path.join(DEMO, 'mmlu', 'test', f), path.join(evalData, f));
    const second = await runSpec(t, specFile);
    expect(second.state.status).toBe('succeeded');
    expect(second.state.stages.map((s) => [s.name, s.status])).toEqual([
      ['data', 'skipped'],
      ['weights', 'skipped'],
      ['pretrain', 'skipped'],
      ['evaluate', 'succeeded'],
    ]);
    // The failed attempt of the first run is attempt 1 of evaluate; the rerun's is attempt 2.
    expect(second.state.stages.find((s) => s.name === 'evaluate')!.attempts.map((a) => [a.attempt, a.outcome])).toEqual([
      [1, 'failed'],
      [2, 'succeeded'],
    ]);
  });

  it('a flag ModelLink does not know fails the stage at once with the usage message', async () => {
    const dir = tempDir('badflag');
    const spec = fiveStageSpec('badflag', path.join(dir, 'ws'), { trainIters: 20 });
    spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
    Object.assign(spec.stages[2], { args: { '--no-such-flag': '3' }, allowUnknownFlags: true });
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status).toBe('failed');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts).toHaveLength(1);
    expect(pretrain.attempts[0].failureClass).toBe('bad-arguments');
    expect(failure).toMatch(/usage: pretrain_gpt\.py/);
    expect(failure).toMatch(/unrecognized arguments: --no-such-flag 3/);
    expect(failure).toMatch(/not retried/);
  });

  it("a single-node training runs though the spec's master port is taken on the node (torchrun's store binds it)", async () => {
    const dir = tempDir('port-taken');
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, '0.0.0.0', resolve));
    try {
      const spec = fiveStageSpec('port-taken', path.join(dir, 'ws'), { trainIters: 10 });
      spec.cluster = { nodes: 1, devicesPerNode: 2, masterPort: (taken.address() as net.AddressInfo).port };
      spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
      const { state, failure } = await runSpec(t, writeSpec(dir, spec));
      expect(state.status, failure).toBe('succeeded');
      expect(state.stages.find((s) => s.name === 'pretrain')!.attempts).toHaveLength(1);
    } finally {
      taken.close();
    }
  });

  it('cancelling during training kills the trainer: no emulator process remains', async () => {
    const dir = tempDir('cancel');
    const ws = path.join(dir, 'ws');
    const spec = fiveStageSpec('cancel', ws, { trainIters: 5000 });
    spec.stages = spec.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
    const handle = await startSpec(t, writeSpec(dir, spec));
    const deadline = Date.now() + 60_000;
    for (;;) {
      const snap = await snapshot(handle);
      if (snap.live?.stage === 'pretrain' && (snap.live.iteration ?? 0) >= 5) break;
      if (Date.now() > deadline) throw new Error(`training never started: ${JSON.stringify(snap)}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(processesMentioning(ws).length).toBeGreaterThan(0);
    const cliEnv = { TEMPORAL_ADDRESS: t.config.address };
    const status = await runCli(['status', handle.workflowId, '--json'], cliEnv);
    expect(status.code, status.stderr).toBe(0);
    const live = JSON.parse(status.stdout);
    expect(live).toMatchObject({ workflowId: handle.workflowId, status: 'running', live: { stage: 'pretrain', trainIters: 5000 } });
    expect(live.live.iteration).toBeGreaterThanOrEqual(5);
    expect(live.live.tokensPerSecondPerDevice).toBeGreaterThan(0);
    expect(live.stages.find((s: { name: string }) => s.name === 'pretrain').status).toBe('running');
    const cancel = await runCli(['cancel', handle.workflowId], cliEnv);
    expect(cancel.code, cancel.stderr).toBe(0);
    const error = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WorkflowFailedError);
    expect((error as WorkflowFailedError).cause).toBeInstanceOf(CancelledFailure);
    expect(processesMentioning(ws)).toEqual([]);
    const state = await handle.query(progressQuery);
    expect(state.stages.find((s) => s.name === 'pretrain')!.status).toBe('cancelled');
  });
});
