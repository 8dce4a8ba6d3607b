/**
 * The demo pipeline and a DPO pipeline as MindSpeed-LLM 2.3.0 runs them (the emulator's
 * roots/mindspeed-llm-2.3.0), each crashing once and resuming, on a real Temporal dev server; and the
 * dying-gasp checkpoint of high availability, written between save intervals, resumed from. DPO and the dying
 * gasp also run on 26.1.0 (the maintained release), and there a torch_dist pretraining with async save crashes before
 * a save is finalized and resumes from the complete one before it; the demo runs on every other version's root.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO, dpoSpec, EMULATOR, fiveStageSpec, onFramework, tempDir, writeSpec, type RawSpec } from '../testkit/specs.ts';
import { runSpec, startTestTemporal, type TestTemporal } from '../testkit/temporal.ts';

const ROOT_230 = path.join(EMULATOR, 'roots', 'mindspeed-llm-2.3.0');

let t: TestTemporal;
beforeAll(async () => {
  t = await startTestTemporal();
});
afterAll(async () => {
  await t?.stop();
});

function on230(spec: RawSpec): RawSpec {
  return onFramework(spec, 'mindspeed-llm', '2.3.0', ROOT_230);
}

/** Every file under a directory. */
function filesUnder(dir: string): string[] {
  return fs
    .readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((f) => path.join(dir, f))
    .filter((f) => fs.statSync(f).isFile());
}

function withStageEnv(spec: RawSpec, stage: string, env: Record<string, string>): RawSpec {
  return { ...spec, stages: spec.stages.map((s) => (s.name === stage ? { ...s, env: { ...(s.env as Record<string, string>), ...env } } : s)) };
}

describe('MindSpeed-LLM 2.3.0 on the emulator', () => {
  it('runs the demo pipeline (fine-tuning through posttrain_gpt.py --stage sft); a crash in fine-tuning resumes from its checkpoint', async () => {
    const dir = tempDir('msl-demo');
    const spec = withStageEnv(on230(fiveStageSpec('msl-demo', path.join(dir, 'ws'), { trainIters: 20, saveInterval: 10 })), 'finetune', {
      MLEMU_FAULTS: 'crash@15',
    });
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status, failure).toBe('succeeded');
    const finetune = state.stages.find((s) => s.name === 'finetune')!;
    expect(finetune.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(finetune.attempts[1].loadedIteration).toBe(10);
    // MindSpeed-LLM's save line (`successfully saved checkpoint from iteration`) is read as a save.
    expect(finetune.attempts[0].timings?.saves).toBe(1);
    const log = fs.readFileSync(finetune.attempts[1].logFile!, 'utf8');
    // The resume dropped --finetune, --no-load-optim and --no-load-rng and loaded its own save directory.
    const argv = JSON.parse(/^# argv: (.*)$/m.exec(log)![1]) as string[];
    expect(argv).toEqual(expect.arrayContaining(['posttrain_gpt.py', '--stage', 'sft', '--ckpt-format', 'torch']));
    expect(argv).not.toContain('--finetune');
    expect(argv).not.toContain('--no-load-optim');
    expect(log).toMatch(/successfully loaded checkpoint from .* at iteration 10/);
    expect(finetune.finalIteration).toBe(20);
    const evaluate = state.stages.find((s) => s.name === 'evaluate')!;
    expect(JSON.parse(fs.readFileSync(evaluate.output, 'utf8')).results[0]).toMatchObject({ task: 'mmlu' });
  });

  it.each(['2.3.0', '26.1.0'])(
    '%s runs a DPO pipeline (pairwise preprocessing, posttrain_gpt.py --stage dpo); a crash resumes from its checkpoint',
    async (version) => {
      const dir = tempDir(`msl-dpo-${version}`);
      const spec = onFramework(
        dpoSpec('msl-dpo', path.join(dir, 'ws'), { trainIters: 20, saveInterval: 10, dpoEnv: { MLEMU_FAULTS: 'crash@13' } }),
        'mindspeed-llm',
        version,
        path.join(EMULATOR, 'roots', `mindspeed-llm-${version}`),
      );
      const { state, failure } = await runSpec(t, writeSpec(dir, spec));
      expect(state.status, failure).toBe('succeeded');
      const pairs = state.stages.find((s) => s.name === 'pairs')!;
      for (const side of ['chosen', 'rejected'])
        for (const part of ['input_ids', 'labels']) expect(fs.existsSync(`${pairs.output}_packed_${side}_${part}_document.bin`)).toBe(true);
      const dpo = state.stages.find((s) => s.name === 'dpo')!;
      expect(dpo.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
      expect(dpo.attempts[1].loadedIteration).toBe(10);
      // The reference model stays the converted weights (--ref-model); 2.1.0+ load it without RNG state by themselves.
      const resumed = JSON.parse(/^# argv: (.*)$/m.exec(fs.readFileSync(dpo.attempts[1].logFile!, 'utf8'))![1]) as string[];
      const weights = state.stages.find((s) => s.name === 'weights')!;
      expect(resumed[resumed.indexOf('--ref-model') + 1]).toBe(weights.output);
      expect(resumed).not.toContain('--no-load-rng');
      expect(dpo.finalIteration).toBe(20);
    },
  );

  /** The DPO pipeline with LoRA on the converted weights, evaluated with the DPO stage's LoRA weights; a crash at 13. */
  function loraDpoSpec(name: string, dir: string, version: string): RawSpec {
    // The fault fires once: its marker stays in one place, not in a save directory a restart changes.
    const dpoEnv = { MLEMU_FAULTS: 'crash@13', MLEMU_MARKER_DIR: path.join(dir, 'markers') };
    const spec = onFramework(
      dpoSpec(name, path.join(dir, 'ws'), { trainIters: 20, saveInterval: 10, dpoEnv }),
      'mindspeed-llm',
      version,
      path.join(EMULATOR, 'roots', `mindspeed-llm-${version}`),
    );
    spec.stages = spec.stages.map((s) =>
      s.name === 'dpo' ? { ...s, lora: { r: 8, alpha: 16 } } : s.name === 'evaluate' ? { ...s, load: 'weights', loraLoad: 'dpo' } : s,
    );
    return spec;
  }

  const argvOf = (logFile: string) => JSON.parse(/^# argv: (.*)$/m.exec(fs.readFileSync(logFile, 'utf8'))![1]) as string[];

  it('resumes a LoRA DPO stage without --finetune, so its reference model stays the base weights, counting on', async () => {
    const dir = tempDir('msl-dpo-lora');
    const { state, failure } = await runSpec(t, writeSpec(dir, loraDpoSpec('msl-dpo-lora', dir, '2.3.0')));
    expect(state.status, failure).toBe('succeeded');
    const dpo = state.stages.find((s) => s.name === 'dpo')!;
    const weights = state.stages.find((s) => s.name === 'weights')!;
    expect(dpo.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(dpo.attempts[1].loadedIteration).toBe(10);
    const second = argvOf(dpo.attempts[1].logFile!);
    // examples/mcore/llama2/dpo_llama2_7b_lora_ptd.sh's shape: the base in --load, the LoRA checkpoint in --lora-load.
    expect(second).not.toContain('--finetune');
    expect(second).toEqual(expect.arrayContaining(['--no-load-optim', '--no-load-rng']));
    expect(second[second.indexOf('--load') + 1]).toBe(weights.output);
    expect(second[second.indexOf('--lora-load') + 1]).toBe(dpo.output);
    // The policy loads the LoRA checkpoint; the reference (is_load_refer) the base alone.
    const log = fs.readFileSync(dpo.attempts[1].logFile!, 'utf8');
    expect(log.split(`loading checkpoint from ${dpo.output} at iteration 10`).length - 1).toBe(1);
    expect(log.split(`loading checkpoint from ${weights.output} at iteration 1`).length - 1).toBe(2);
    expect(dpo.attempts[1].resumeNote).toMatch(/^LoRA DPO resumes from iter_0000010 without --finetune/);
    expect(dpo.attempts[1].lastIteration).toBe(20);
    expect(dpo.finalIteration).toBe(20);
    const evaluate = state.stages.find((s) => s.name === 'evaluate')!;
    const evalArgv = argvOf(evaluate.attempts[0].logFile!);
    expect(evalArgv[evalArgv.indexOf('--lora-load') + 1]).toBe(dpo.output);
  });

  it('restarts a LoRA DPO stage on 2.1.0 from its first weights, so its reference model stays attempt 1’s, into a folder of its own', async () => {
    const dir = tempDir('msl-dpo-lora-210');
    const { state, failure } = await runSpec(t, writeSpec(dir, loraDpoSpec('msl-dpo-lora', dir, '2.1.0')));
    expect(state.status, failure).toBe('succeeded');
    const dpo = state.stages.find((s) => s.name === 'dpo')!;
    expect(dpo.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    const [first, second] = [argvOf(dpo.attempts[0].logFile!), argvOf(dpo.attempts[1].logFile!)];
    const restart = path.join(dpo.output, 'warm-0');
    // The first attempt's command, saving elsewhere: under its --finetune DPOTrainer merges --lora-load into the
    // reference model, so a warm restart's --lora-load at the stage's checkpoints would make the policy its reference.
    expect(second[second.indexOf('--save') + 1]).toBe(restart);
    // From the entrypoint on (the launcher's port is picked per attempt).
    const withoutSave = (argv: string[]) => argv.slice(argv.indexOf('posttrain_gpt.py')).filter((a, i, all) => a !== '--save' && all[i - 1] !== '--save');
    expect(withoutSave(second)).toEqual(withoutSave(first));
    expect(second).not.toContain('--lora-load');
    const log = fs.readFileSync(dpo.attempts[1].logFile!, 'utf8');
    expect(log).not.toContain(`loading checkpoint from ${dpo.output}`);
    expect(dpo.attempts[1].resumeNote).toMatch(/^LoRA DPO restarts from the beginning: a warm restart would make its reference model the policy it resumes/);
    // Attempt 1's checkpoint stays as it was; the restart trains all 20 iterations in its folder.
    expect(fs.readFileSync(path.join(dpo.output, 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe('10');
    for (const f of filesUnder(path.join(dpo.output, 'iter_0000010'))) expect(fs.statSync(f).mtimeMs, f).toBeLessThanOrEqual(dpo.attempts[1].startedAt!);
    expect(fs.readFileSync(path.join(restart, 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe('20');
    expect(dpo.finalIteration).toBe(20);
    // The evaluation loads the LoRA weights of the restart that finished.
    const evaluate = state.stages.find((s) => s.name === 'evaluate')!;
    const evalArgv = argvOf(evaluate.attempts[0].logFile!);
    expect(evalArgv[evalArgv.indexOf('--lora-load') + 1]).toBe(restart);
  });

  it('2.1.0 resumes a DPO stage whose reference is a training stage’s checkpoint: --refer-model-iter names its iteration', async () => {
    const dir = tempDir('msl-dpo-210');
    const spec = onFramework(
      dpoSpec('msl-dpo-210', path.join(dir, 'ws'), { trainIters: 20, saveInterval: 10, dpoEnv: { MLEMU_FAULTS: 'crash@13' } }),
      'mindspeed-llm',
      '2.1.0',
      path.join(EMULATOR, 'roots', 'mindspeed-llm-2.1.0'),
    );
    const demo = fiveStageSpec('x', '/tmp').stages;
    const data = demo.find((s) => s.name === 'data')!;
    const pretrain = { ...demo.find((s) => s.name === 'pretrain')!, trainIters: 6, saveInterval: 3 };
    spec.stages = spec.stages.flatMap((s) => (s.name === 'dpo' ? [data, pretrain, { ...s, load: 'pretrain' }] : [s]));
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status, failure).toBe('succeeded');
    const dpo = state.stages.find((s) => s.name === 'dpo')!;
    const trained = state.stages.find((s) => s.name === 'pretrain')!;
    expect(dpo.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    const resumed = JSON.parse(/^# argv: (.*)$/m.exec(fs.readFileSync(dpo.attempts[1].logFile!, 'utf8'))![1]) as string[];
    expect(resumed[resumed.indexOf('--ref-model') + 1]).toBe(trained.output);
    expect(resumed[resumed.indexOf('--refer-model-iter') + 1]).toBe('6');
    expect(fs.readFileSync(dpo.attempts[1].logFile!, 'utf8')).toContain(`loading checkpoint from ${trained.output} at iteration 6`);
    expect(dpo.finalIteration).toBe(20);
  });

  it('resumes LoRA fine-tuning as a warm restart (said in its attempt) and exports the model back to HF with the LoRA merged', async () => {
    const dir = tempDir('msl-lora');
    const base = on230(fiveStageSpec('msl-lora', path.join(dir, 'ws'), { trainIters: 20, saveInterval: 10 }));
    const spec = withStageEnv(base, 'finetune', { MLEMU_FAULTS: 'crash@15' });
    spec.stages = [
      ...spec.stages.slice(0, 4).map((s) => (s.name === 'pretrain' ? { ...s, trainIters: 10 } : s)),
      { ...spec.stages[4], lora: { r: 8, alpha: 16 } },
      { name: 'export', kind: 'convert', from: 'pretrain', to: 'hf', hfDir: path.join(DEMO, 'hf-tiny'), lora: { load: 'finetune' } },
    ];
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status, failure).toBe('succeeded');
    const finetune = state.stages.find((s) => s.name === 'finetune')!;
    expect(finetune.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(finetune.attempts[1].resumeNote).toMatch(
      /^LoRA warm restart from iter_0000010: the LoRA weights continue, the iteration count, optimizer and learning-rate schedule start again/,
    );
    const argv = JSON.parse(/^# argv: (.*)$/m.exec(fs.readFileSync(finetune.attempts[1].logFile!, 'utf8'))![1]) as string[];
    expect(argv).toContain('--finetune');
    expect(argv[argv.indexOf('--lora-load') + 1]).toBe(finetune.output);
    // Counting from 0 again, the warm restart saves into its own folder and trains only the 10 iterations left.
    const warm = path.join(finetune.output, 'warm-10');
    expect(argv[argv.indexOf('--save') + 1]).toBe(warm);
    expect(argv[argv.indexOf('--train-iters') + 1]).toBe('10');
    expect(finetune.attempts[1].resumeNote).toContain(`trains the remaining 10 iterations and saves into ${warm}`);
    // Attempt 1's checkpoint and tracker were last written before attempt 2 started: nothing of it was rewritten.
    const firstFiles = [path.join(finetune.output, 'latest_checkpointed_iteration.txt'), ...filesUnder(path.join(finetune.output, 'iter_0000010'))];
    expect(firstFiles.length).toBeGreaterThan(1);
    for (const f of firstFiles) expect(fs.statSync(f).mtimeMs, f).toBeLessThanOrEqual(finetune.attempts[1].startedAt!);
    expect(fs.readFileSync(firstFiles[0], 'utf8').trim()).toBe('10');
    expect(fs.readdirSync(finetune.output).filter((d) => d.startsWith('iter_'))).toEqual(['iter_0000010']);
    expect(fs.readFileSync(path.join(warm, 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe('10');
    // The stage's count is the user's: 10 before the crash's checkpoint and 10 after.
    expect(finetune.finalIteration).toBe(20);
    expect(finetune.attempts[1].lastIteration).toBe(20);
    const exported = state.stages.find((s) => s.name === 'export')!;
    // The next stage merges the last warm checkpoint, not attempt 1's.
    const exportArgv = JSON.parse(/^# argv: (.*)$/m.exec(fs.readFileSync(exported.attempts[0].logFile!, 'utf8'))![1]) as string[];
    expect(exportArgv[exportArgv.indexOf('--lora-load') + 1]).toBe(warm);
    expect(exported.output).toMatch(/export\/hf\/mg2hf$/);
    // Both directions by one converter, recorded with the version in each stage's manifest.
    for (const name of ['weights', 'export']) {
      const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'ws', 'msl-lora', name, 'manifest.json'), 'utf8'));
      expect(manifest).toMatchObject({ framework: { flavour: 'mindspeed-llm', version: '2.3.0' }, converter: 'convert_ckpt.py' });
    }
    expect(fs.readdirSync(exported.output).some((f) => f.endsWith('.safetensors') || f.endsWith('.bin'))).toBe(true);
  });

  it.each(['1.0.0', '2.1.0', '2.2.0', '26.0.0', '26.1.0'])('MindSpeed-LLM %s runs the demo pipeline too, a fine-tuning crash resumed', async (version) => {
    const dir = tempDir(`msl-demo-${version}`);
    const root = path.join(EMULATOR, 'roots', `mindspeed-llm-${version}`);
    const spec = withStageEnv(
      onFramework(fiveStageSpec('msl-demo', path.join(dir, 'ws'), { trainIters: 20, saveInterval: 10 }), 'mindspeed-llm', version, root),
      'finetune',
      {
        MLEMU_FAULTS: 'crash@15',
      },
    );
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status, failure).toBe('succeeded');
    const finetune = state.stages.find((s) => s.name === 'finetune')!;
    expect(finetune.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    expect(finetune.attempts[1].loadedIteration).toBe(10);
    expect(finetune.finalIteration).toBe(20);
  });

  it('fails an evaluation that logged its exception and exited 0, with the logged error in its excerpt', async () => {
    const dir = tempDir('msl-eval');
    const base = on230(fiveStageSpec('msl-eval', path.join(dir, 'ws')));
    // A file where the task's data directory should be: MmluEval's os.listdir raises, evaluation.py logs it and exits 0.
    const spec: RawSpec = {
      ...base,
      stages: [
        base.stages[2],
        { name: 'evaluate', kind: 'evaluate', load: 'weights', maxAttempts: 1, tasks: [{ name: 'mmlu', dataPath: path.join(DEMO, 'alpaca.jsonl') }] },
      ],
    };
    const { state } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status).toBe('failed');
    const evaluate = state.stages.find((s) => s.name === 'evaluate')!;
    expect(evaluate.attempts).toHaveLength(1);
    expect(evaluate.attempts[0].reason).toMatch(/evaluation printed no result for mmlu/);
    expect(fs.readFileSync(evaluate.attempts[0].logFile!, 'utf8')).toMatch(/Not a directory/);
    expect(evaluate.attempts[0].excerpt?.join('\n')).toMatch(/Not a directory/);
  });

  it.each(['2.2.0', '2.3.0'])(
    '%s: passes --ckpt-format torch_dist when a pretraining stage asks for it, and resumes from the torch checkpoint it writes anyway',
    async (version) => {
      const dir = tempDir(`msl-dist-${version}`);
      const base = onFramework(
        fiveStageSpec('msl-dist', path.join(dir, 'ws'), { trainIters: 20, saveInterval: 10, pretrainEnv: { MLEMU_FAULTS: 'crash@15' } }),
        'mindspeed-llm',
        version,
        path.join(EMULATOR, 'roots', `mindspeed-llm-${version}`),
      );
      const stages = base.stages.slice(0, 4).filter((s) => s.name !== 'sft-data');
      Object.assign(
        stages.find((s) => s.name === 'pretrain')!,
        { checkpointFormat: 'torch_dist' },
      );
      const { state, failure } = await runSpec(t, writeSpec(dir, { ...base, stages }));
      expect(state.status, failure).toBe('succeeded');
      const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
      expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
      const first = fs.readFileSync(pretrain.attempts[0].logFile!, 'utf8');
      const argv = JSON.parse(/^# argv: (.*)$/m.exec(first)![1]) as string[];
      expect(argv[argv.indexOf('--ckpt-format') + 1]).toBe('torch_dist');
      // _add_dummy_args_v2 reset it: the save is torch, one mp_rank_* shard directory per iteration, and the resume reads it.
      expect(first).toMatch(/saving checkpoint at iteration +10 to .* in torch format/);
      expect(fs.existsSync(path.join(pretrain.output, 'iter_0000010', 'mp_rank_00', 'model_optim_rng.pt'))).toBe(true);
      expect(pretrain.attempts[1].loadedIteration).toBe(10);
      expect(pretrain.finalIteration).toBe(20);
    },
  );

  it('26.1.0 pretrains with torch_dist and async save; a crash before the save at 10 is finalized leaves it torn, and the resume loads 5', async () => {
    const dir = tempDir('msl-dist-26.1.0');
    const base = onFramework(
      fiveStageSpec('msl-dist-async', path.join(dir, 'ws'), { trainIters: 20, saveInterval: 5, pretrainEnv: { MLEMU_FAULTS: 'crash@11' } }),
      'mindspeed-llm',
      '26.1.0',
      path.join(EMULATOR, 'roots', 'mindspeed-llm-26.1.0'),
    );
    // Up to the pretraining: a stage loading its torch_dist checkpoint with the pinned --ckpt-format torch is refused at validate.
    const stages = base.stages.slice(0, 4);
    Object.assign(
      stages.find((s) => s.name === 'pretrain')!,
      { checkpointFormat: 'torch_dist', asyncSave: true },
    );
    const { state, failure } = await runSpec(t, writeSpec(dir, { ...base, stages }));
    expect(state.status, failure).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    const first = fs.readFileSync(pretrain.attempts[0].logFile!, 'utf8');
    const argv = JSON.parse(/^# argv: (.*)$/m.exec(first)![1]) as string[];
    expect(argv[argv.indexOf('--ckpt-format') + 1]).toBe('torch_dist');
    expect(argv).toContain('--async-save');
    // The save at 10 was scheduled, never finalized: no .metadata, and the tracker stayed at 5.
    expect(first).toMatch(/scheduled an async checkpoint save at iteration +10/);
    expect(first).not.toMatch(/successfully saved checkpoint from iteration +10/);
    expect(pretrain.attempts[1].loadedIteration).toBe(5);
    const second = fs.readFileSync(pretrain.attempts[1].logFile!, 'utf8');
    expect(second).toMatch(/loading distributed checkpoint from .* at iteration 5/);
    expect(second).toMatch(/successfully loaded checkpoint from .* at iteration 5/);
    // linkflow left the torn folder as it was; Megatron itself writes over it when attempt 2 saves 10 again.
    expect(second).toContain('Overwriting old incomplete / corrupted checkpoint...');
    // Attempt 1's complete checkpoint stays as written; attempt 2 finalized its own saves up to 20.
    const five = filesUnder(path.join(pretrain.output, 'iter_0000005'));
    expect(five.map((f) => path.basename(f)).sort()).toEqual(['.metadata', '__0_0.distcp', 'common.pt', 'metadata.json']);
    for (const f of five) expect(fs.statSync(f).mtimeMs, f).toBeLessThanOrEqual(pretrain.attempts[1].startedAt!);
    expect(fs.readFileSync(path.join(pretrain.output, 'latest_checkpointed_iteration.txt'), 'utf8').trim()).toBe('20');
    expect(fs.existsSync(path.join(pretrain.output, 'iter_0000020', '.metadata'))).toBe(true);
    expect(pretrain.finalIteration).toBe(20);
  });

  // 26.1.0 honours --ckpt-format, and HA refuses torch_dist there: the pinned --ckpt-format torch is what lets it run.
  it.each(['2.3.0', '26.1.0'])('%s resumes from the dying-gasp checkpoint high availability writes between save intervals', async (version) => {
    const dir = tempDir(`msl-ha-${version}`);
    const base = onFramework(
      fiveStageSpec('msl-ha', path.join(dir, 'ws'), { trainIters: 30, saveInterval: 10, pretrainEnv: { MLEMU_FAULTS: 'crash@17' } }),
      'mindspeed-llm',
      version,
      path.join(EMULATOR, 'roots', `mindspeed-llm-${version}`),
    );
    const spec: RawSpec = {
      ...base,
      modellink: { ...(base.modellink as Record<string, unknown>), env: { MLEMU_ITER_TIME_MS: '15', MLEMU_MINDIO_TTP: '1' } },
      cluster: { nodes: 1, devicesPerNode: 2 },
      highAvailability: { enabled: true },
      stages: base.stages.slice(0, 4).filter((s) => s.name !== 'sft-data'),
    };
    const { state, failure } = await runSpec(t, writeSpec(dir, spec));
    expect(state.status, failure).toBe('succeeded');
    const pretrain = state.stages.find((s) => s.name === 'pretrain')!;
    expect(pretrain.attempts.map((a) => a.outcome)).toEqual(['failed', 'succeeded']);
    // TTP saved the last finished iteration (16), not the last multiple of the save interval (10).
    expect(pretrain.attempts[1].loadedIteration).toBe(16);
    expect(fs.readdirSync(pretrain.output).filter((d) => d.endsWith('_tmp'))).toEqual([]);
    // Attempt 2 went on from 16 and saved 20 and 30: attempt 1's checkpoints (10 and the dying gasp's 16) stay as written.
    const firstFiles = ['iter_0000010', 'iter_0000016'].flatMap((d) => filesUnder(path.join(pretrain.output, d)));
    expect(firstFiles.length).toBeGreaterThan(2);
    for (const f of firstFiles) expect(fs.statSync(f).mtimeMs, f).toBeLessThanOrEqual(pretrain.attempts[1].startedAt!);
    expect(pretrain.finalIteration).toBe(30);
  });
});
