/**
 * The ModelLink emulator (emulator/): flags, files on disk, log lines and fault injection.
 * Runs the Python entrypoints as child processes; no Temporal involved.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { classifyFailure } from '../failures/failures.ts';
import { ITERATION_RE, iterations } from '../testkit/emulator-log.ts';
import { untilTrue, within } from '../testkit/wait.ts';
import { tinyModelArgs, tinyTrainArgs } from '../testkit/emulator-args.ts';
import { getFreePort } from '../node/free-port.ts';
import { spawnGroup, stopGroup } from '../testkit/processes.ts';

const EMULATOR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'emulator');
const PYTHON = process.env.PYTHON ?? 'python3';
/** formats.md (a): how linkflow (and ModelLink's CI) find the iteration in a training log line. */

let tmp: string;
let hf: string; // fake HF model + tokenizer directory
let dataPrefix: string; // preprocessed pretraining data (<P>_text_document)

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(command: string[], env: Record<string, string> = {}, cwd = tmp): Result {
  const [cmd, ...args] = command;
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, MLEMU_ITER_TIME_MS: '5', MLEMU_CONVERT_TIME_MS: '5', MLEMU_EVAL_QUESTION_MS: '1', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

const py = (script: string, args: string[], env: Record<string, string> = {}) => run([PYTHON, path.join(EMULATOR, script), ...args], env);
const torchrun = (nproc: number, script: string, args: string[], env: Record<string, string> = {}) =>
  run(
    [
      path.join(EMULATOR, 'torchrun'),
      '--nproc_per_node',
      String(nproc),
      '--nnodes',
      '1',
      '--node_rank',
      '0',
      '--master_addr',
      'localhost',
      '--master_port',
      String(masterPort),
      path.join(EMULATOR, script),
      ...args,
    ],
    env,
  );

function trainArgs(opts: { save?: string; load?: string; iters?: number; tp?: number; pp?: number; extra?: string[] } = {}): string[] {
  return tinyTrainArgs({ ...opts, tokenizer: hf, dataPrefix, iters: opts.iters ?? 30 });
}

let masterPort: number; // node 0's torchrun serves the ranks' store there
beforeAll(async () => {
  masterPort = await getFreePort();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'linkflow-emulator-test-'));
  hf = path.join(tmp, 'hf');
  for (const args of [
    ['hf-model', hf],
    ['pretrain-jsonl', path.join(tmp, 'corpus.jsonl'), '--docs', '120'],
    ['eval', path.join(tmp, 'eval')],
  ]) {
    const r = run([PYTHON, path.join(EMULATOR, 'tools', 'make_fixtures.py'), ...args]);
    expect(r.code, r.stderr).toBe(0);
  }
  fs.mkdirSync(path.join(tmp, 'data'));
  const r = py('preprocess_data.py', [
    '--input',
    path.join(tmp, 'corpus.jsonl'),
    '--tokenizer-name-or-path',
    hf,
    '--output-prefix',
    path.join(tmp, 'data', 'corpus'),
    '--log-interval',
    '50',
  ]);
  expect(r.code, r.stderr).toBe(0);
  dataPrefix = path.join(tmp, 'data', 'corpus_text_document');
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('argument parsing', () => {
  it('rejects an unknown flag like argparse: usage, error line, exit 2', () => {
    const r = py('pretrain_gpt.py', [...trainArgs(), '--no-such-flag']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^usage: pretrain_gpt\.py /);
    expect(r.stderr).toContain('pretrain_gpt.py: error: unrecognized arguments: --no-such-flag');
    expect(r.stdout).toBe('');
  });

  it('rejects a bad choice and a bad type', () => {
    expect(py('pretrain_gpt.py', ['--lr-decay-style', 'exponential']).stderr).toContain("argument --lr-decay-style: invalid choice: 'exponential'");
    const r = py('evaluation.py', ['--max-new-tokens', 'many']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("argument --max-new-tokens: invalid int value: 'many'");
  });

  it('builds convert_ckpt.py flags from the chosen plugins, as ModelLink does', () => {
    const base = ['--model-type', 'GPT', '--load-model-type', 'hf', '--save-model-type', 'mg', '--load-dir', hf, '--save-dir', path.join(tmp, 'unused')];
    const noTokenizer = py('convert_ckpt.py', base);
    expect(noTokenizer.code).toBe(2);
    expect(noTokenizer.stderr).toContain('the following arguments are required: --tokenizer-model');
    // --lora-r exists for the mg loader only.
    const lora = py('convert_ckpt.py', [...base, '--tokenizer-model', hf, '--lora-r', '8']);
    expect(lora.code).toBe(2);
    expect(lora.stderr).toContain('unrecognized arguments: --lora-r 8');
  });
});

describe('preprocess_data.py', () => {
  it('writes <prefix>_text_document.bin/.idx in Megatron MMIDIDX format', () => {
    const idx = fs.readFileSync(`${dataPrefix}.idx`);
    expect(idx.subarray(0, 9).equals(Buffer.from('MMIDIDX\x00\x00', 'latin1'))).toBe(true);
    expect(idx.readBigUInt64LE(9)).toBe(1n); // version
    const dtype = idx.readUInt8(17);
    expect(dtype).toBe(4); // int32, ModelLink's IndexedDatasetBuilder default
    const sequences = Number(idx.readBigUInt64LE(18));
    const documents = Number(idx.readBigUInt64LE(26));
    expect(sequences).toBe(120);
    expect(documents).toBe(121);
    const lengths = Array.from({ length: sequences }, (_, i) => idx.readInt32LE(34 + 4 * i));
    expect(fs.statSync(`${dataPrefix}.bin`).size).toBe(lengths.reduce((a, b) => a + b, 0) * 4);
  });

  it('names instruction outputs <prefix>_packed_{input_ids,attention_mask,labels}_document', () => {
    const input = path.join(tmp, 'alpaca.jsonl');
    fs.writeFileSync(input, ['a', 'b', 'c'].map((x) => JSON.stringify({ instruction: `say ${x}`, input: '', output: x })).join('\n'));
    const prefix = path.join(tmp, 'data', 'alpaca');
    const r = py('preprocess_data.py', [
      '--input',
      input,
      '--tokenizer-name-or-path',
      hf,
      '--output-prefix',
      prefix,
      '--handler-name',
      'AlpacaStyleInstructionHandler',
      '--prompt-type',
      'llama2',
    ]);
    expect(r.code, r.stderr).toBe(0);
    for (const key of ['input_ids', 'attention_mask', 'labels']) {
      for (const ext of ['bin', 'idx']) expect(fs.existsSync(`${prefix}_packed_${key}_document.${ext}`)).toBe(true);
    }
  });

  it('fails with a FileNotFoundError traceback when --input is missing', () => {
    const r = py('preprocess_data.py', [
      '--input',
      path.join(tmp, 'missing.jsonl'),
      '--tokenizer-name-or-path',
      hf,
      '--output-prefix',
      path.join(tmp, 'data', 'x'),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Traceback (most recent call last):');
    expect(r.stderr).toMatch(/\nFileNotFoundError: .*missing\.jsonl/);
  });
});

describe('convert_ckpt.py', () => {
  it('hf -> mg writes iter_0000001 with one shard per TP x PP rank and tracker 1', () => {
    const save = path.join(tmp, 'converted');
    const r = py('convert_ckpt.py', [
      '--model-type',
      'GPT',
      '--load-model-type',
      'hf',
      '--save-model-type',
      'mg',
      '--target-tensor-parallel-size',
      '2',
      '--target-pipeline-parallel-size',
      '2',
      '--load-dir',
      hf,
      '--save-dir',
      save,
      '--tokenizer-model',
      path.join(hf, 'tokenizer.model'),
      '--use-mcore-models',
      '--model-type-hf',
      'llama2',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Loaded modellink.tasks.checkpoint.loader_hf as the loader.');
    expect(r.stdout).toContain('saving checkpoint at iteration       1 to');
    expect(fs.readdirSync(path.join(save, 'iter_0000001')).sort()).toEqual(['mp_rank_00_000', 'mp_rank_00_001', 'mp_rank_01_000', 'mp_rank_01_001']);
    for (const shard of fs.readdirSync(path.join(save, 'iter_0000001'))) {
      expect(fs.readdirSync(path.join(save, 'iter_0000001', shard))).toEqual(['model_optim_rng.pt']); // no optimizer state
    }
    expect(fs.readFileSync(path.join(save, 'latest_checkpointed_iteration.txt'), 'utf8')).toBe('1');
  });

  it('fails like ModelLink when the HF directory does not exist', () => {
    const missing = path.join(tmp, 'no-such-model');
    const r = py('convert_ckpt.py', [
      '--model-type',
      'GPT',
      '--load-model-type',
      'hf',
      '--save-model-type',
      'mg',
      '--load-dir',
      missing,
      '--save-dir',
      path.join(tmp, 'c2'),
      '--tokenizer-model',
      'x',
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`FileNotFoundError: [Errno 2] No such file or directory: '${path.join(missing, 'config.json')}'`);
  });
});

describe('pretrain_gpt.py', () => {
  const save = () => path.join(tmp, 'pretrain');

  it('trains, logs every iteration and saves iter_0000010/20/30 with tracker 30', () => {
    const r = torchrun(4, 'pretrain_gpt.py', trainArgs({ save: save(), tp: 2, pp: 2, extra: ['--use-distributed-optimizer'] }));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('------------------------ ModelLink Arguments ------------------------');
    expect(r.stdout).toMatch(/\n {2}tensor_model_parallel_size \.+ 2\n/);
    expect(iterations(r.stdout)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const line = r.stdout.split('\n').find((l) => ITERATION_RE.test(l) && l.includes('iteration       30/      30'));
    expect(line).toMatch(
      /^ \[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] iteration {7}30\/ {6}30 \| consumed samples: {10}240 \| elapsed time per iteration \(ms\): \d+\.\d \| learning rate: \d\.\d{6}E[+-]\d\d \| global batch size: {5}8 \| lm loss: \d\.\d{6}E\+00 \| loss scale: 1\.0 \| grad norm: \d+\.\d{3} \| number of skipped iterations: {3}0 \| number of nan iterations: {3}0 \|$/,
    );
    expect(r.stdout).toMatch(/\[Rank 0\] \(after 1 iterations\) memory \(MB\) \| allocated: [0-9.]+ \| max allocated: [0-9.]+/);
    for (const it of [10, 20, 30]) expect(r.stdout).toContain(`saving checkpoint at iteration ${String(it).padStart(7)} to ${save()} in torch format`);
    expect(fs.readdirSync(save()).sort()).toEqual(['iter_0000010', 'iter_0000020', 'iter_0000030', 'latest_checkpointed_iteration.txt']);
    expect(fs.readdirSync(path.join(save(), 'iter_0000030', 'mp_rank_01_001')).sort()).toEqual(['distrib_optim.pt', 'model_optim_rng.pt']);
    expect(fs.readFileSync(path.join(save(), 'latest_checkpointed_iteration.txt'), 'utf8')).toBe('30');
  });

  it('continues from the tracker iteration with --load', () => {
    const r = torchrun(4, 'pretrain_gpt.py', trainArgs({ save: save(), load: save(), iters: 35, tp: 2, pp: 2 }));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(` loading checkpoint from ${save()} at iteration 30`);
    expect(r.stdout).toContain(`  successfully loaded checkpoint from ${save()} [ t 0, p 0 ] at iteration 30`);
    expect(iterations(r.stdout)[0]).toBe(31);
    expect(r.stdout).toMatch(/iteration {7}31\/ {6}35 \| consumed samples: {10}248 \|/);
    expect(fs.readFileSync(path.join(save(), 'latest_checkpointed_iteration.txt'), 'utf8')).toBe('35');
  });

  it('rejects a checkpoint whose TP layout differs from the job', () => {
    // Rank 0's shard (mp_rank_00_000) exists, so Megatron's argument check fails.
    const r = torchrun(2, 'pretrain_gpt.py', trainArgs({ save: path.join(tmp, 'other'), load: save(), iters: 40, tp: 1, pp: 2 }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('AssertionError: tensor_model_parallel_size value from checkpoint (2) is not equal to the input argument value (1).');
  });

  it('prints the two WARNING lines and starts from iteration 1 without a tracker', () => {
    const empty = path.join(tmp, 'empty-load');
    const r = py('pretrain_gpt.py', trainArgs({ load: empty, iters: 2 }));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`WARNING: could not find the metadata file ${empty}/latest_checkpointed_iteration.txt`);
    expect(r.stdout).toContain('    will not load any checkpoints and will start from random');
    expect(iterations(r.stdout)).toEqual([1, 2]);
  });

  it('fails with Megatron’s batch-size assertion', () => {
    const r = torchrun(4, 'pretrain_gpt.py', trainArgs({ iters: 2, extra: ['--global-batch-size', '6'] }));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('AssertionError: global batch size (6) is not divisible by micro batch size (1) times data parallel size (4)');
  });

  it('fails with a FileNotFoundError when the data prefix does not exist', () => {
    const r = py('pretrain_gpt.py', trainArgs({ iters: 2, extra: ['--data-path', path.join(tmp, 'nothing')] }));
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n').at(-1)).toBe(`FileNotFoundError: [Errno 2] No such file or directory: '${path.join(tmp, 'nothing')}.idx'`);
  });
});

describe('LoRA resume with the distributed optimizer (Megatron load_checkpoint l. 738-746)', () => {
  const lora = ['--lora-r', '8', '--lora-alpha', '16', '--lora-target-modules', 'linear_qkv', 'linear_proj', '--use-distributed-optimizer'];
  const weights = () => path.join(tmp, 'lora-base');
  const save = () => path.join(tmp, 'lora-save');
  /** A LoRA run's arguments without the first-load flags (trainArgs adds --no-load-optim/--no-load-rng). */
  const resumeArgs = (opts: { load: string; save: string; iters?: number; extra?: string[] }) =>
    trainArgs({ save: opts.save, load: opts.load, iters: opts.iters ?? 20, extra: [...lora, ...(opts.extra ?? [])] }).filter(
      (a) => a !== '--no-load-optim' && a !== '--no-load-rng',
    );

  beforeAll(() => {
    const c = py('convert_ckpt.py', [
      '--model-type',
      'GPT',
      '--load-model-type',
      'hf',
      '--save-model-type',
      'mg',
      '--load-dir',
      hf,
      '--save-dir',
      weights(),
      '--tokenizer-model',
      path.join(hf, 'tokenizer.model'),
      '--use-mcore-models',
      '--model-type-hf',
      'llama2',
    ]);
    expect(c.code, c.stderr).toBe(0);
    // The first attempt of a LoRA fine-tune: converted weights, --finetune, stopped after iteration 10.
    const first = py('pretrain_gpt.py', trainArgs({ save: save(), load: weights(), iters: 20, extra: [...lora, '--finetune', '--exit-interval', '10'] }));
    expect(first.code, first.stderr).toBe(0);
    expect(fs.readdirSync(path.join(save(), 'iter_0000010', 'mp_rank_00')).sort()).toEqual(['distrib_optim.pt', 'model_optim_rng.pt']);
  });

  it('--load at converted weights with --lora-load at the LoRA checkpoint: FileNotFoundError for <load>/iter_0000001/.../distrib_optim.pt, exit 1', () => {
    const r = py('pretrain_gpt.py', [...resumeArgs({ load: weights(), save: save() }), '--lora-load', save()]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(` loading checkpoint from ${save()} at iteration 10`);
    const stderr = r.stderr.trimEnd().split('\n');
    expect(stderr.at(-1)).toBe(
      `FileNotFoundError: [Errno 2] No such file or directory: '${path.join(weights(), 'iter_0000001', 'mp_rank_00', 'distrib_optim.pt')}'`,
    );
    expect(r.stderr).toMatch(
      /megatron\/training\/checkpointing.py", line 746, in load_checkpoint\n {4}optimizer.load_parameter_state\(optim_checkpoint_name\)/,
    );
    expect(r.stderr).toMatch(/distrib_optimizer.py", line 1144, in load_parameter_state\n {4}state_dict = torch.load\(filename\)/);
    expect(iterations(r.stdout)).toEqual([]);
  });

  it("--load at a full pretraining checkpoint: its optimizer state is the whole model's, and the bucket assertion fails", () => {
    const full = path.join(tmp, 'lora-full-base');
    const pre = py('pretrain_gpt.py', trainArgs({ save: full, load: weights(), iters: 10, extra: ['--use-distributed-optimizer', '--finetune'] }));
    expect(pre.code, pre.stderr).toBe(0);
    const r = py('pretrain_gpt.py', [...resumeArgs({ load: full, save: save() }), '--lora-load', save()]);
    expect(r.code).toBe(1);
    expect(r.stderr.trimEnd().split('\n').at(-1)).toMatch(
      /^AssertionError: Number of unpadded elements in each bucket need to be the same in current run \(\[\{\(torch.bfloat16, torch.float32\): \[\d+\]\}\]\) and checkpoint \(\[\{\(torch.bfloat16, torch.float32\): \[\d+\]\}\]\)$/,
    );
  });

  it("--load at a view whose tracker and distrib_optim.pt are the LoRA checkpoint's and whose model shard is the base's resumes at iteration 11", () => {
    const view = path.join(tmp, 'lora-view');
    fs.mkdirSync(path.join(view, 'iter_0000010', 'mp_rank_00'), { recursive: true });
    fs.symlinkSync(
      path.join(weights(), 'iter_0000001', 'mp_rank_00', 'model_optim_rng.pt'),
      path.join(view, 'iter_0000010', 'mp_rank_00', 'model_optim_rng.pt'),
    );
    fs.symlinkSync(path.join(save(), 'iter_0000010', 'mp_rank_00', 'distrib_optim.pt'), path.join(view, 'iter_0000010', 'mp_rank_00', 'distrib_optim.pt'));
    fs.writeFileSync(path.join(view, 'latest_checkpointed_iteration.txt'), '10');
    const r = py('pretrain_gpt.py', [...resumeArgs({ load: view, save: save() }), '--lora-load', save()]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`  successfully loaded checkpoint from ${view} [ t 0, p 0 ] at iteration 10`);
    expect(iterations(r.stdout)[0]).toBe(11);
    expect(r.stdout).toMatch(/iteration {7}11\/ {6}20 \| consumed samples: {11}88 \|/);
  });
});

describe('expert parallelism: shard names (Megatron get_checkpoint_name l. 81-120)', () => {
  const moe = ['--num-experts', '4', '--moe-router-topk', '2', '--expert-model-parallel-size', '2'];
  it.each([
    [1, ['mp_rank_00_000', 'mp_rank_00_001']],
    [2, ['mp_rank_00_000_000', 'mp_rank_00_000_001', 'mp_rank_00_001_000', 'mp_rank_00_001_001']],
  ])('EP 2, PP %i: mp_rank_XX[_YYY]_EEE', (pp, names) => {
    const save = path.join(tmp, `ep2-pp${pp}`);
    const r = torchrun(2 * pp, 'pretrain_gpt.py', trainArgs({ save, pp, iters: 10, extra: moe }));
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readdirSync(path.join(save, 'iter_0000010')).sort()).toEqual(names);
  });
});

describe('fault injection', () => {
  it('crash@15 exits 1 with a traceback once; the same command then succeeds', () => {
    const save = path.join(tmp, 'crash');
    const args = trainArgs({ save, iters: 20 });
    const first = py('pretrain_gpt.py', args, { MLEMU_FAULTS: 'crash@15' });
    expect(first.code).toBe(1);
    expect(first.stderr).toContain('Traceback (most recent call last):');
    expect(first.stderr).toMatch(/\nRuntimeError: /);
    expect(Math.max(...iterations(first.stdout))).toBe(14);
    expect(fs.existsSync(path.join(save, '.mlemu-fired-crash@15'))).toBe(true);
    expect(fs.readFileSync(path.join(save, 'latest_checkpointed_iteration.txt'), 'utf8')).toBe('10');

    const second = py('pretrain_gpt.py', args, { MLEMU_FAULTS: 'crash@15' });
    expect(second.code, second.stderr).toBe(0);
    expect(Math.max(...iterations(second.stdout))).toBe(20);
  });

  it('oom and hccl print the NPU/HCCL errors', () => {
    const oom = py('pretrain_gpt.py', trainArgs({ save: path.join(tmp, 'oom'), iters: 5 }), { MLEMU_FAULTS: 'oom@3' });
    expect(oom.code).toBe(1);
    expect(oom.stderr).toContain('RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB (NPU 0; 60.97 GiB total capacity;');
    const hccl = py('pretrain_gpt.py', trainArgs({ save: path.join(tmp, 'hccl'), iters: 5 }), { MLEMU_FAULTS: 'hccl@3' });
    expect(hccl.code).toBe(1);
    expect(hccl.stderr).toContain('EI0002');
    expect(hccl.stderr).toMatch(/\nRuntimeError: .*HCCL.*timeout/);
  });

  it('oom prints the three CANN forms, then the other ranks print their HCCL echoes; linkflow blames the OOM', () => {
    const r = torchrun(4, 'pretrain_gpt.py', trainArgs({ save: path.join(tmp, 'oom-ranks'), iters: 5 }), { MLEMU_FAULTS: 'oom@3' });
    expect(r.code, r.stderr).toBe(1);
    const oomAt = r.stderr.indexOf('RuntimeError: NPU out of memory. Tried to allocate');
    expect(r.stderr).toMatch(/EL0004: .* Failed to allocate memory\./);
    expect(r.stderr).toContain('rtMalloc execute failed, reason=[driver error:out of memory]');
    expect(oomAt).toBeGreaterThan(r.stderr.indexOf('EL0004'));
    // Ranks 1 to 3, whose peer vanished, fail in their next collective after it.
    for (const peer of [1, 2, 3]) {
      const echo = r.stderr.search(new RegExp(`RuntimeError: \\[Rank ${peer}\\] HCCL AllReduce (failed|timeout)`));
      expect(echo, `rank ${peer}`).toBeGreaterThan(oomAt);
    }
    expect(r.stderr.match(/ERR02200 DIST call hccl api failed/g)).toHaveLength(3);
    const report = classifyFailure({ exitCode: 1, signal: null }, (r.stdout + r.stderr).split('\n'));
    expect(report.class).toBe('out-of-memory');
    expect(report.reason).toMatch(/^RuntimeError: NPU out of memory/);
  });

  it('sigkill kills the process and still leaves its marker', () => {
    const save = path.join(tmp, 'sigkill');
    const r = py('pretrain_gpt.py', trainArgs({ save, iters: 5 }), { MLEMU_FAULTS: 'pretrain:sigkill@2' });
    expect(r.signal).toBe('SIGKILL');
    expect(fs.existsSync(path.join(save, '.mlemu-fired-sigkill@2'))).toBe(true);
  });

  it('high availability: ModelLink’s argument checks (reuse-fp32-param, dist-ckpt, local copy)', () => {
    const cases: [string[], string][] = [
      [['--enable-high-availability', '--reuse-fp32-param'], 'AssertionError: reuse-fp32-param and enable-high-availability do not support enabling together.'],
      [['--enable-high-availability', '--use-dist-ckpt'], 'AssertionError: switch of the high availability feature is unsupported'],
      [['--enable-optimizer-state-local-copy'], 'AssertionError: switch of the high availability feature is unsupported'],
    ];
    for (const [extra, error] of cases) {
      const r = py('pretrain_gpt.py', trainArgs({ iters: 2, extra }));
      expect(r.code, extra.join(' ')).toBe(1);
      expect(r.stderr).toContain(error);
    }
    const ok = py('pretrain_gpt.py', trainArgs({ iters: 2, save: path.join(tmp, 'ha-no-distopt'), extra: ['--enable-high-availability'] }));
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('SIGTERM with high availability alone ends the process by the signal and saves nothing (no public source saves there)', async () => {
    const save = path.join(tmp, 'ha-sigterm');
    const child = spawnGroup(
      PYTHON,
      [path.join(EMULATOR, 'pretrain_gpt.py'), ...trainArgs({ save, iters: 2000, extra: ['--enable-high-availability', '--save-interval', '1000'] })],
      {
        cwd: tmp,
        env: { ...process.env, MLEMU_ITER_TIME_MS: '5' },
      },
    );
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    const deadline = Date.now() + 30_000;
    while (iterations(stdout).length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGTERM');
    expect(await exited).toBe('SIGTERM');
    expect(stdout).not.toContain('saving checkpoint');
    expect(fs.existsSync(path.join(save, 'latest_checkpointed_iteration.txt'))).toBe(false);
  });

  it('hang@5 stops printing but keeps the process alive', async () => {
    const child = spawnGroup(PYTHON, [path.join(EMULATOR, 'pretrain_gpt.py'), ...trainArgs({ save: path.join(tmp, 'hang'), iters: 20 })], {
      cwd: tmp,
      env: { ...process.env, MLEMU_ITER_TIME_MS: '5', MLEMU_FAULTS: 'hang@5' },
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    try {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(child.exitCode).toBeNull();
      expect(iterations(stdout)).toEqual([1, 2, 3, 4]);
      expect(fs.existsSync(path.join(tmp, 'hang', '.mlemu-fired-hang@5'))).toBe(true);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe('SIGTERM');
  });

  it('nan: fp16 skips the steps and counts nan iterations; bf16 raises ModelLink’s NaN check', () => {
    const base = trainArgs({ iters: 8 }).filter((a) => a !== '--bf16');
    const fp16 = py('pretrain_gpt.py', [...base, '--fp16', '--save', path.join(tmp, 'nan16')], { MLEMU_FAULTS: 'nan@5' });
    expect(fp16.code, fp16.stderr).toBe(0);
    const lines = fp16.stdout.split('\n').filter((l) => ITERATION_RE.test(l));
    expect(lines[3]).toContain('lm loss:');
    expect(lines[4]).not.toContain('lm loss');
    expect(lines[4]).toContain('number of skipped iterations:   1 | number of nan iterations:   1 |');
    // DynamicGradScaler with hysteresis 2: the scale halves from the second skipped step on.
    expect(lines[5]).toMatch(/loss scale: 2147483648\.0 \|/);
    expect(lines[7]).toMatch(/loss scale: 536870912\.0 \|/);

    const bf16 = py('pretrain_gpt.py', [...base, '--bf16', '--save', path.join(tmp, 'nan-bf16')], { MLEMU_FAULTS: 'nan@5' });
    expect(bf16.code).toBe(1);
    expect(bf16.stderr).toContain('ValueError: Rank 0: found NaN in local forward loss calculation.');

    // Without the check bf16 trains on: no lm loss from the NaN on, and Megatron counts no nan iteration.
    const unchecked = py('pretrain_gpt.py', [...base, '--bf16', '--no-check-for-nan-in-loss-and-grad', '--save', path.join(tmp, 'nan-bf16-unchecked')], {
      MLEMU_FAULTS: 'nan@5',
    });
    expect(unchecked.code, unchecked.stderr).toBe(0);
    const uncheckedLines = unchecked.stdout.split('\n').filter((l) => ITERATION_RE.test(l));
    expect(uncheckedLines[3]).toContain('lm loss:');
    for (const line of uncheckedLines.slice(4)) {
      expect(line).not.toContain('lm loss');
      expect(line).toContain('grad norm: nan | number of skipped iterations:   0 | number of nan iterations:   0 |');
    }
  });

  it('rejects a malformed MLEMU_FAULTS', () => {
    const r = py('pretrain_gpt.py', trainArgs({ iters: 2 }), { MLEMU_FAULTS: 'explode@3' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('mlemu: invalid MLEMU_FAULTS');
  });
});

describe('evaluation.py', () => {
  const evalArgs = (load: string, dataPath: string) => [
    ...tinyModelArgs(hf),
    '--micro-batch-size',
    '1',
    '--bf16',
    '--load',
    load,
    '--task-data-path',
    dataPath,
    '--task',
    'mmlu',
    '--max-new-tokens',
    '1',
    '--exit-on-missing-checkpoint',
    '--no-load-rng',
    '--no-load-optim',
  ];
  let ckpt: string;

  beforeAll(() => {
    ckpt = path.join(tmp, 'eval-ckpt');
    const r = py('pretrain_gpt.py', trainArgs({ save: ckpt, iters: 10 }));
    expect(r.code, r.stderr).toBe(0);
  });

  it('scores mmlu: per-question lines, acc summary, DataFrame and running time', () => {
    const r = py('evaluation.py', evalArgs(ckpt, path.join(tmp, 'eval', 'mmlu', 'test')));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/INFO:modellink\.tasks\.evaluation\.eval_impl\.mmlu_eval:correct: [ABCD], AI: [ABCD]\n/);
    expect(r.stdout).toMatch(/INFO:modellink\.tasks\.evaluation\.eval_impl\.mmlu_eval:mmlu acc = \d+\/8=[0-9.]+\n/);
    expect(r.stdout).toMatch(/INFO:__main__:\n {12}subject {2}question_n +acc\n/);
    expect(r.stdout).toMatch(/\n2 +total +8 +[0-9.]+\n/);
    expect(r.stdout).toMatch(/INFO:__main__:MMLU Running Time:, [0-9.]+/);
  });

  it('logs a missing data directory at INFO and exits 0 without a result line', () => {
    const missing = path.join(tmp, 'eval', 'mmlu', 'nope');
    const r = py('evaluation.py', evalArgs(ckpt, missing));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`INFO:__main__:[Errno 2] No such file or directory: '${missing}'`);
    expect(r.stdout).not.toContain('acc =');
  });

  it('exits (status 0, like Megatron) on --exit-on-missing-checkpoint without a tracker', () => {
    const r = py('evaluation.py', evalArgs(path.join(tmp, 'no-ckpt'), path.join(tmp, 'eval', 'mmlu', 'test')));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(">> '--exit-on-missing-checkpoint' set ... exiting. <<");
    expect(r.stdout).not.toContain('acc =');
  });
});

describe('torchrun stand-in', () => {
  it('starts one worker per --nproc-per-node with torch’s environment and passes the script its arguments unchanged', () => {
    const script = path.join(tmp, 'show.py');
    const names = [
      'RANK',
      'LOCAL_RANK',
      'WORLD_SIZE',
      'LOCAL_WORLD_SIZE',
      'GROUP_RANK',
      'ROLE_RANK',
      'GROUP_WORLD_SIZE',
      'MASTER_ADDR',
      'MASTER_PORT',
      'TORCHELASTIC_RESTART_COUNT',
      'TORCHELASTIC_MAX_RESTARTS',
      'TORCHELASTIC_RUN_ID',
      'TORCHELASTIC_USE_AGENT_STORE',
    ];
    fs.writeFileSync(
      script,
      `import json, os, sys\nsys.stdout.write(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "env": {k: os.environ.get(k) for k in ${JSON.stringify(names)}}, "argv": sys.argv[1:]}) + "\\n")\n`,
    );
    const r = run([
      path.join(EMULATOR, 'torchrun'),
      '--nproc-per-node',
      '8',
      '--nnodes',
      '2',
      '--node-rank',
      '1',
      '--master-addr',
      '10.0.0.1',
      '--master-port',
      '6001',
      script,
      '--a',
      '1',
      '--flag',
      'x y',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const workers = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { pid: number; ppid: number; env: Record<string, string>; argv: string[] });
    expect(workers.map((w) => Number(w.env.RANK)).sort((a, b) => a - b)).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    expect(new Set(workers.map((w) => w.pid)).size).toBe(8); // eight processes, one parent: the agent
    expect(new Set(workers.map((w) => w.ppid)).size).toBe(1);
    for (const w of workers) {
      const rank = Number(w.env.RANK);
      expect(w.env).toEqual({
        RANK: String(rank),
        LOCAL_RANK: String(rank - 8),
        WORLD_SIZE: '16',
        LOCAL_WORLD_SIZE: '8',
        GROUP_RANK: '1',
        ROLE_RANK: String(rank),
        GROUP_WORLD_SIZE: '2',
        MASTER_ADDR: '10.0.0.1',
        MASTER_PORT: '6001',
        TORCHELASTIC_RESTART_COUNT: '0',
        TORCHELASTIC_MAX_RESTARTS: '0',
        TORCHELASTIC_RUN_ID: 'none',
        TORCHELASTIC_USE_AGENT_STORE: 'True',
      });
      expect(w.argv).toEqual(['--a', '1', '--flag', 'x y']);
    }
  });

  it('rejects unknown torchrun options before the script', () => {
    const r = run([path.join(EMULATOR, 'torchrun'), '--nproc_per_node', '2', '--bogus', '1', path.join(EMULATOR, 'pretrain_gpt.py')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('torchrun: error: unrecognized arguments: --bogus');
  });

  // --- a running job: the agent and its workers -------------------------------------------------------

  const PEER_LOST = /RuntimeError: \[Rank (\d+)\] HCCL AllReduce failed: lost the connection to remote rank \[(\d+)\]/g;

  interface Job {
    pid: number;
    out: () => string;
    err: () => string;
    done: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  }

  /** torchrun on one node, as a child process in its own process group; the test kills the group (afterEach below). */
  const jobs = new Set<ChildProcess>();
  function startTorchrun(nproc: number, args: string[], env: Record<string, string> = {}): Job {
    const child = spawnGroup(
      path.join(EMULATOR, 'torchrun'),
      ['--nproc_per_node', String(nproc), '--master_addr', 'localhost', '--master_port', String(masterPort), path.join(EMULATOR, 'pretrain_gpt.py'), ...args],
      {
        cwd: tmp,
        env: { ...process.env, MLEMU_ITER_TIME_MS: '20', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    jobs.add(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
      child.on('close', (code, signal) => {
        resolve({ code, signal, at: Date.now() });
      }),
    );
    return { pid: child.pid!, out: () => out, err: () => err, done };
  }

  // A rank the agent did not reap (the agent itself killed) is still in the group.
  afterEach(async () => {
    await Promise.all([...jobs].map((child) => stopGroup(child, 0)));
    jobs.clear();
  });

  /** The processes whose parent is `pid` (from /proc/<pid>/stat, field 4). */
  function childrenOf(pid: number): number[] {
    const kids: number[] = [];
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
        if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) kids.push(Number(name));
      } catch {
        // exited meanwhile
      }
    }
    return kids;
  }

  const procList = (pid: number, file: 'environ' | 'cmdline') =>
    fs
      .readFileSync(`/proc/${pid}/${file}`, 'utf8')
      .split('\0')
      .filter((x) => x !== '');
  const environOf = (pid: number) => Object.fromEntries(procList(pid, 'environ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

  const lines = (job: Job) => [...job.out().split('\n'), ...job.err().split('\n')].filter((l) => l !== '');

  /** Worker pid by global rank, read from /proc while the job runs. */
  function workersByRank(agent: number): Map<number, number> {
    return new Map(childrenOf(agent).map((pid) => [Number(environOf(pid).RANK), pid]));
  }

  it('runs each rank as a child process of the agent; a SIGKILLed worker ends the job with torch’s ChildFailedError block, exit 1, classified killed', async () => {
    const job = startTorchrun(4, trainArgs({ save: path.join(tmp, 'tr-kill'), iters: 2000, tp: 2, pp: 2 }));
    await untilTrue(() => iterations(job.out()).length >= 3, 60_000, 'training');
    const workers = workersByRank(job.pid);
    expect([...workers.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const [rank, pid] of workers) {
      const env = environOf(pid);
      expect({
        RANK: env.RANK,
        LOCAL_RANK: env.LOCAL_RANK,
        WORLD_SIZE: env.WORLD_SIZE,
        LOCAL_WORLD_SIZE: env.LOCAL_WORLD_SIZE,
        GROUP_RANK: env.GROUP_RANK,
        MASTER_PORT: env.MASTER_PORT,
      }).toEqual({
        RANK: String(rank),
        LOCAL_RANK: String(rank),
        WORLD_SIZE: '4',
        LOCAL_WORLD_SIZE: '4',
        GROUP_RANK: '0',
        MASTER_PORT: String(masterPort),
      });
      expect(procList(pid, 'cmdline').slice(1, 3)).toEqual(['-u', path.join(EMULATOR, 'pretrain_gpt.py')]);
      expect(childrenOf(pid)).toEqual([]); // a worker is one rank, it starts nobody
    }
    expect(procList(job.pid, 'cmdline').some((a) => a.endsWith('/torchrun'))).toBe(true);

    const victim = workers.get(2)!;
    process.kill(victim, 'SIGKILL');
    const end = await within(job.done, 60_000, 'torchrun did not exit');
    expect(end.code, job.err()).toBe(1);
    expect(end.signal).toBeNull();
    expect(job.err()).toContain(
      `  rank      : 2 (local_rank: 2)\n  exitcode  : -9 (pid: ${victim})\n  error_file: <N/A>\n  traceback : Signal 9 (SIGKILL) received by PID ${victim}\n`,
    );
    expect(job.err()).toMatch(/\ntorch\.distributed\.elastic\.multiprocessing\.errors\.ChildFailedError: \n=+\n\S*pretrain_gpt\.py FAILED\n-+\nFailures:\n/);
    expect(job.err()).toMatch(/\nERROR:torch\.distributed\.elastic\.multiprocessing\.api:failed \(exitcode: -?\d+\) local_rank: \d \(pid: \d+\) of binary: /);
    // The peers noticed the loss at their next collective, as on real hardware.
    const echoes = [...job.err().matchAll(PEER_LOST)];
    expect(echoes.length).toBeGreaterThan(0);
    expect(echoes.every((m) => m[2] === '2')).toBe(true);
    expect(childrenOf(job.pid)).toEqual([]);
    const report = classifyFailure({ exitCode: end.code, signal: end.signal }, lines(job));
    expect(report.class).toBe('killed');
    expect(report.reason).toContain('rank 2 was killed by SIGKILL');
  }, 120_000);

  it('OOM on one rank: its EL0004/rtMalloc/NPU out of memory lines come first, then its peers’ HCCL errors, then torchrun’s block', async () => {
    const job = startTorchrun(4, trainArgs({ save: path.join(tmp, 'tr-oom'), iters: 20, tp: 2, pp: 2 }), { MLEMU_FAULTS: 'oom@5' });
    const end = await within(job.done, 60_000, 'torchrun did not exit');
    expect(end.code).toBe(1);
    const err = job.err();
    const oom = err.indexOf('RuntimeError: NPU out of memory. Tried to allocate');
    expect(err).toMatch(/EL0004: \S+ Failed to allocate memory/);
    expect(err).toContain('rtMalloc execute failed, reason=[driver error:out of memory]');
    expect(err.indexOf('EL0004')).toBeLessThan(oom);
    const echoes = [...err.matchAll(PEER_LOST)];
    expect(echoes.map((m) => m[1]).sort()).toEqual(['1', '2', '3']); // every peer of rank 0
    expect(echoes.every((m) => m[2] === '0' && (m.index ?? 0) > oom)).toBe(true);
    expect(err.indexOf('ChildFailedError')).toBeGreaterThan(Math.max(...echoes.map((m) => m.index ?? 0)));
    expect((err.match(/NPU out of memory/g) ?? []).length).toBe(1); // one rank ran out, the others echo
  }, 90_000);

  it('SIGTERM to the agent: it logs the death signal, passes SIGTERM to every worker, waits for them (a save finishes), then dies of SignalException', async () => {
    const save = path.join(tmp, 'tr-term');
    const job = startTorchrun(2, trainArgs({ save, iters: 2000, pp: 2, extra: ['--save-interval', '1000', '--exit-signal-handler'] }), {
      MLEMU_SAVE_TIME_MS: '1500',
    });
    await untilTrue(() => iterations(job.out()).length >= 3, 60_000, 'training');
    const workers = [...workersByRank(job.pid).values()];
    process.kill(job.pid, 'SIGTERM');
    const end = await within(job.done, 60_000, 'torchrun did not exit');
    expect(end.code).toBe(1);
    const err = job.err();
    expect(err).toContain('WARNING:torch.distributed.elastic.agent.server.api:Received Signals.SIGTERM death signal, shutting down workers\n');
    for (const pid of workers) expect(err).toContain(`WARNING:torch.distributed.elastic.multiprocessing.api:Sending process ${pid} closing signal SIGTERM\n`);
    expect(err).not.toContain('Unable to shutdown process');
    expect(err).toMatch(new RegExp(`\\ntorch\\.distributed\\.elastic\\.multiprocessing\\.api\\.SignalException: Process ${job.pid} got signal: 15\\n$`));
    // The workers' exit signal handler saved the iteration they agreed on; the agent waited for it.
    const last = Math.max(...iterations(job.out()));
    expect(job.out()).toContain(`  successfully saved checkpoint at iteration ${String(last).padStart(7)} to ${save}`);
    expect(fs.readFileSync(path.join(save, 'latest_checkpointed_iteration.txt'), 'utf8')).toBe(String(last));
    expect(classifyFailure({ exitCode: end.code, signal: end.signal }, lines(job)).class).toBe('killed');
  }, 90_000);

  it('SIGTERM to the agent during a save longer than 30 s: the workers are SIGKILLed 30 s later and no checkpoint is completed', async () => {
    const save = path.join(tmp, 'tr-term-long');
    const job = startTorchrun(2, trainArgs({ save, iters: 2000, pp: 2, extra: ['--save-interval', '1000', '--exit-signal-handler'] }), {
      MLEMU_SAVE_TIME_MS: '120000',
    });
    await untilTrue(() => iterations(job.out()).length >= 3, 60_000, 'training');
    const workers = [...workersByRank(job.pid).values()];
    const sent = Date.now();
    process.kill(job.pid, 'SIGTERM');
    await untilTrue(() => job.out().includes('saving checkpoint at iteration'), 30_000, 'the stop save');
    const end = await within(job.done, 90_000, 'torchrun did not exit');
    expect(end.code).toBe(1);
    expect(end.at - sent).toBeGreaterThanOrEqual(29_500);
    expect(end.at - sent).toBeLessThan(80_000);
    for (const pid of workers)
      expect(job.err()).toContain(
        `WARNING:torch.distributed.elastic.multiprocessing.api:Unable to shutdown process ${pid} via Signals.SIGTERM, forcefully exiting via Signals.SIGKILL\n`,
      );
    expect(fs.existsSync(path.join(save, 'latest_checkpointed_iteration.txt'))).toBe(false);
    expect(job.out()).not.toContain('successfully saved checkpoint');
  }, 150_000);
});
