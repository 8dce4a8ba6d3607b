/** The pure core: log lines → progress, exit status + log → failure class, directories → checkpoints. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeLayout, loraResumeView, shardDirNames } from '../frameworks/modellink/checkpoint.ts';
import { findResumePoint } from '../activities/checkpoints.ts';
import { causeLine, classifyFailure } from '../failures/failures.ts';
import { LogWindow } from '../failures/log-window.ts';
import { CAUSE_LINE_MAX, causeInOneLine, retryCause } from '../failures/summary.ts';
import { applyLogEvent, parseLogLine, type AttemptProgress } from '../frameworks/modellink/training-log.ts';
import { tempDir } from '../testkit/specs.ts';

const LINE =
  ' [2024-09-29 10:00:00] iteration       10/    2000 | consumed samples:         1280 | elapsed time per iteration (ms): 5432.1 | throughput per GPU (TFLOP/s/GPU): 180.2 | learning rate: 1.250000E-06 | global batch size:   128 | lm loss: 1.875432E+00 | loss scale: 1.0 | grad norm: 1.234 | number of skipped iterations:   0 | number of nan iterations:   0 |';

describe('training log parser', () => {
  it("reads Megatron's training line (formats.md example)", () => {
    expect(parseLogLine(LINE)).toMatchObject({
      type: 'iteration',
      iteration: 10,
      trainIters: 2000,
      consumedSamples: 1280,
      elapsedMsPerIteration: 5432.1,
      tflopsPerDevice: 180.2,
      learningRate: 1.25e-6,
      globalBatchSize: 128,
      loss: 1.875432,
      nanIterations: 0,
    });
  });

  it('turns a line into progress with tokens/s per device in the table unit', () => {
    const progress: AttemptProgress = {};
    expect(applyLogEvent(progress, parseLogLine(LINE)!, { seqLength: 4096, globalBatchSize: 128, worldSize: 8 })).toBe(true);
    // 4096 × 128 / (5.4321 s × 8 devices)
    expect(progress.tokensPerSecondPerDevice).toBeCloseTo((4096 * 128) / (5.4321 * 8), 3);
    expect(progress.iteration).toBe(10);
  });

  it('sees a NaN loss', () => {
    const progress: AttemptProgress = {};
    applyLogEvent(progress, parseLogLine(LINE.replace('1.875432E+00', 'NAN').replace('nan iterations:   0', 'nan iterations:   1'))!);
    expect(progress.nanLoss).toBe(true);
  });

  it('reads checkpoint save/load lines and evaluation results', () => {
    expect(parseLogLine('saving checkpoint at iteration      30 to /ck in torch format')).toEqual({ type: 'checkpoint-saving', iteration: 30, dir: '/ck' });
    expect(parseLogLine('  successfully saved checkpoint at iteration      30 to /ck')).toEqual({ type: 'checkpoint-saved', iteration: 30, dir: '/ck' });
    expect(parseLogLine('  successfully loaded checkpoint from /ck [ t 0, p 0 ] at iteration 30')).toEqual({
      type: 'checkpoint-loaded',
      iteration: 30,
      dir: '/ck',
    });
    expect(parseLogLine(' loading release checkpoint from /w')).toEqual({ type: 'checkpoint-loading', iteration: 'release', dir: '/w' });
    expect(parseLogLine('INFO:modellink.tasks.evaluation.eval_impl.mmlu_eval:mmlu acc = 7/20=0.35')).toEqual({
      type: 'eval-result',
      task: 'mmlu',
      correct: 7,
      total: 20,
      accuracy: 0.35,
    });
    expect(parseLogLine('INFO:__main__:acc = {0.125}')).toEqual({ type: 'human-eval-result', accuracy: 0.125 });
    // agi_eval.py: the task's summary is upper case with %e; its per-subject lines (and bbh's) are not a task's result.
    expect(parseLogLine('INFO:modellink.tasks.evaluation.eval_impl.agi_eval:AGIEval acc = 7/20=3.500000e-01')).toEqual({
      type: 'eval-result',
      task: 'agieval',
      correct: 7,
      total: 20,
      accuracy: 0.35,
    });
    expect(parseLogLine('INFO:modellink.tasks.evaluation.eval_impl.agi_eval:logiqa-en acc = 3/6=5.000000e-01')).toBeUndefined();
    expect(parseLogLine('INFO:root:boolean_expressions acc = 1/2=0.5')).toBeUndefined();
    expect(parseLogLine('something else entirely')).toBeUndefined();
  });
});

describe('failure classification', () => {
  it('bad arguments are not retryable and the excerpt starts at the usage line', () => {
    const r = classifyFailure({ exitCode: 2, signal: null }, [
      'noise',
      'usage: pretrain_gpt.py [-h] ...',
      'pretrain_gpt.py: error: unrecognized arguments: --bogus',
    ]);
    expect(r).toMatchObject({ class: 'bad-arguments', retryable: false });
    expect(r.excerpt[0]).toMatch(/^usage:/);
  });

  it('tells communication, memory, missing files, signals and plain crashes apart', () => {
    // EI0002 is a collective that waited for a peer that never came: a stuck (or failed) rank, not the network.
    // Real log: https://github.com/vllm-project/vllm-ascend/issues/3413 (failures/corpus/hang/vllm-ascend-3413-graph-compile-hang-ei0002.log),
    // where one rank was stuck compiling a graph and its peers printed EI0002.
    expect(classifyFailure({ exitCode: 1, signal: null }, ['[ERROR] HCCL EI0002: The wait execution of the Notify register times out.']).class).toBe('hang');
    expect(classifyFailure({ exitCode: 1, signal: null }, ['[ERROR] HCCL EI0006: Getting socket times out.']).class).toBe('communication');
    expect(classifyFailure({ exitCode: 1, signal: null }, ['RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB']).class).toBe('out-of-memory');
    expect(classifyFailure({ exitCode: 1, signal: null }, ["FileNotFoundError: [Errno 2] No such file or directory: '/x'"])).toMatchObject({
      class: 'missing-input',
      retryable: false,
    });
    expect(classifyFailure({ exitCode: null, signal: 'SIGKILL' }, ['iteration 3']).class).toBe('killed');
    expect(classifyFailure({ exitCode: null, signal: 'SIGSEGV' }, []).class).toBe('segfault');
    expect(classifyFailure({ exitCode: 1, signal: null }, ['Traceback (most recent call last):', 'RuntimeError: boom'])).toMatchObject({
      class: 'exception',
      retryable: true,
    });
    expect(classifyFailure({ exitCode: 3, signal: null }, []).class).toBe('unknown');
    expect(classifyFailure({ exitCode: null, signal: 'SIGKILL' }, [], 'hang')).toMatchObject({ class: 'hang', retryable: true });
    // A node of a gang that never came: the rendezvous times out, a fault of the machines.
    expect(
      classifyFailure({ exitCode: 1, signal: null }, [
        'Traceback (most recent call last):',
        'torch.distributed.DistStoreError: Timed out after 600 seconds waiting for clients. 1/2 clients joined.',
      ]).class,
    ).toBe('communication');
  });
});

/** A realistic 8-rank ending: rank 3's device runs out of memory, the 7 others lose their peer (real CANN texts). */
function oomWithEchoes(): string[] {
  const oom = [
    'EL0004: 2024-09-29-10:12:01.123.456 Failed to allocate memory.',
    '        Possible Cause: Available memory is insufficient.',
    '        Solution: Close applications not in use.',
    '        TraceBack (most recent call last):',
    '        rtMalloc execute failed, reason=[driver error:out of memory][FUNC:FuncErrorReason][FILE:error_message_manage.cc][LINE:53]',
    'Traceback (most recent call last):',
    '  File "/opt/ModelLink/pretrain_gpt.py", line 262, in <module>',
    '    main()',
    'RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB (NPU 3; 60.97 GiB total capacity; 56.51 GiB already allocated; 56.51 GiB current active; 1.18 GiB free; 58.73 GiB reserved in total by PyTorch)',
  ];
  const echo = (rank: number) => [
    `[ERROR] 2024-09-29-10:42:01 (PID:${4000 + rank}, Device:${rank}, RankID:${rank}) ERR02200 DIST call hccl api failed.`,
    'EI0002: 2024-09-29-10:42:01.000.001 The wait execution of the Notify register times out. Reason: The Notify register has not received the Notify record from remote rank [3].',
    '        Possible Cause: 1. An exception occurs during the execution on some NPUs in the cluster.',
    '        TraceBack (most recent call last):',
    '        rtStreamSynchronizeWithTimeout execute failed, reason=[notify wait timeout][FUNC:FuncErrorReason][FILE:error_message_manage.cc][LINE:53]',
    'Traceback (most recent call last):',
    ...Array.from({ length: 20 }, (_, i) => `  File "/opt/ModelLink/megatron/frame${i}.py", line ${i}, in f${i}`),
    `RuntimeError: [Rank ${rank}] HCCL AllReduce timeout: notify wait timeout (EI0002), error code 507010. The Inner error is reported as above. The process exits for this inner error, and the current working operator name is HcclAllreduce.`,
  ];
  return [' [2024-09-29 10:12:00] iteration       41/    2000 | lm loss: 1.875432E+00 |', ...oom, ...[0, 1, 2, 4, 5, 6, 7].flatMap(echo)];
}

describe('root causes win over their echoes', () => {
  it('an OOM followed by the HCCL errors of the 7 other ranks is out-of-memory', () => {
    const r = classifyFailure({ exitCode: 1, signal: null }, oomWithEchoes());
    expect(r).toMatchObject({ class: 'out-of-memory', retryable: true });
    expect(r.reason).toMatch(/^RuntimeError: NPU out of memory\. Tried to allocate 2\.00 GiB \(NPU 3;/);
  });

  it('each CANN form of the OOM is enough alone', () => {
    for (const line of [
      'EL0004: 2024-09-29-10:12:01.123.456 Failed to allocate memory.',
      '[ERROR] RecentErrMsg: Memory_Allocation_Failure(EL0004): Failed to allocate memory.',
      '        rtMalloc execute failed, reason=[driver error:out of memory]',
    ]) {
      expect(classifyFailure({ exitCode: 1, signal: null }, [line, ...oomWithEchoes().slice(11)]).class, line).toBe('out-of-memory');
    }
  });

  it('notify-wait timeouts alone are a hang (a peer never came; see EI0002 above), and the reason is the inner error above the traceback', () => {
    const r = classifyFailure({ exitCode: 1, signal: null }, oomWithEchoes().slice(11));
    expect(r.class).toBe('hang');
    expect(r.reason).toMatch(/^EI0002: .*The wait execution of the Notify register times out/);
  });

  it("one rank's own crash (an AICore error, a Python error) followed by the others' HCCL errors is that crash", () => {
    const crash = [
      'EZ9999: Inner Error!',
      'EZ9999: 2024-09-29-10:12:01.1 The error from device(chipId:3, dieId:0), there is an aicore error',
      'Traceback (most recent call last):',
      '  File "pretrain_gpt.py", line 262, in <module>',
      'RuntimeError: The Inner error is reported as above. The process exits for this inner error, and the current working operator name is MatMulV2.',
    ];
    const echoes = oomWithEchoes().slice(11);
    expect(classifyFailure({ exitCode: 1, signal: null }, [...crash, ...echoes])).toMatchObject({
      class: 'exception',
      reason: expect.stringMatching(/^EZ9999: 2024.*aicore error/),
    });
    expect(classifyFailure({ exitCode: 1, signal: null }, ['Traceback (most recent call last):', "KeyError: 'input_ids'", ...echoes])).toMatchObject({
      class: 'exception',
      reason: "KeyError: 'input_ids'",
    });
  });

  it('"The Inner error is reported as above" points at the device error, not at the RuntimeError', () => {
    const log = [
      'EZ9999: Inner Error!',
      'EZ9999: 2024-09-29-10:12:01.1 The error from device(chipId:0, dieId:0), there is an aicore error',
      'Traceback (most recent call last):',
      '  File "pretrain_gpt.py", line 262, in <module>',
      'RuntimeError: The Inner error is reported as above. The process exits for this inner error, and the current working operator name is MatMulV2.',
    ];
    const r = classifyFailure({ exitCode: 1, signal: null }, log);
    expect(r.class).toBe('exception');
    expect(r.reason).toMatch(/^EZ9999: 2024.*aicore error/);
  });

  it("a worker's own error is the reason, not torchrun's ChildFailedError about it", () => {
    const log = [
      'Traceback (most recent call last):',
      '  File "pretrain_gpt.py", line 262, in <module>',
      "KeyError: 'lm_head'",
      'Traceback (most recent call last):',
      '  File "/usr/local/bin/torchrun", line 8, in <module>',
      'torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ',
      '============================================================',
      'pretrain_gpt.py FAILED',
      'Root Cause (first observed failure):',
      '[0]:',
      '  exitcode  : 1 (pid: 4321)',
    ];
    expect(classifyFailure({ exitCode: 1, signal: null }, log)).toMatchObject({ class: 'exception', reason: "KeyError: 'lm_head'" });
  });

  it('a bounded log window keeps the root cause when hundreds of echo lines follow it', () => {
    const window = new LogWindow({ head: 5, tail: 50, isCause: causeLine() });
    for (let i = 0; i < 100; i++) window.push(`noise ${i}`);
    for (const line of oomWithEchoes()) window.push(line);
    for (let r = 8; r < 16; r++) for (const line of oomWithEchoes().slice(11)) window.push(line.replace('Device:', `Device:${r}`));
    const lines = window.lines();
    expect(lines.length).toBeLessThan(100);
    expect(lines).toContain('noise 0');
    expect(lines.some((l) => /^\.\.\. \(\d+ lines\) \.\.\.$/.test(l))).toBe(true);
    expect(classifyFailure({ exitCode: 1, signal: null }, lines).class).toBe('out-of-memory');
  });

  it('does not keep a non-retryable match from the middle of a long run (a stray warning must not end the stage)', () => {
    const window = new LogWindow({ head: 5, tail: 50, isCause: causeLine() });
    for (let i = 0; i < 100; i++) window.push(`noise ${i}`);
    window.push('UserWarning: could not read /etc/hostname-extra: No such file or directory');
    for (let i = 0; i < 100; i++) window.push(`iteration line ${i}`);
    for (const line of oomWithEchoes().slice(11)) window.push(line);
    expect(classifyFailure({ exitCode: 1, signal: null }, window.lines()).class).toBe('hang');
  });
});

describe('failure classification under torchrun (it exits 1 and prints ChildFailedError whatever ended its workers)', () => {
  /** torch/distributed/elastic/multiprocessing/errors/__init__.py's block, as torch 2.1 prints it. */
  function torchrunEnd(failures: { rank: number; exitcode: number; pid: number }[]): string[] {
    const entry = (f: { rank: number; exitcode: number; pid: number }, i: number) => [
      `[${i}]:`,
      '  time      : 2024-05-01_10:00:00',
      '  host      : node-a',
      `  rank      : ${f.rank} (local_rank: ${f.rank})`,
      `  exitcode  : ${f.exitcode} (pid: ${f.pid})`,
      '  error_file: <N/A>',
      f.exitcode < 0
        ? `  traceback : Signal ${-f.exitcode} (${f.exitcode === -9 ? 'SIGKILL' : 'SIGSEGV'}) received by PID ${f.pid}`
        : '  traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html',
    ];
    const [root, ...others] = failures;
    return [
      `ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: ${root.exitcode}) local_rank: ${root.rank} (pid: ${root.pid}) of binary: /usr/bin/python3`,
      'Traceback (most recent call last):',
      '  File "/usr/local/bin/torchrun", line 8, in <module>',
      '    sys.exit(main())',
      '  File "/usr/local/lib/python3.8/site-packages/torch/distributed/launcher/api.py", line 264, in launch_agent',
      '    raise ChildFailedError(',
      'torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ',
      '='.repeat(60),
      'pretrain_gpt.py FAILED',
      '-'.repeat(60),
      'Failures:',
      ...(others.length ? others.flatMap((f, i) => entry(f, i + 1)) : ['  <NO_OTHER_FAILURES>']),
      '-'.repeat(60),
      'Root Cause (first observed failure):',
      ...entry(root, 0),
      '='.repeat(60),
    ];
  }
  const hcclEcho = [
    'Traceback (most recent call last):',
    'RuntimeError: [Rank 0] HCCL AllReduce failed: lost the connection to remote rank [1] (connection closed by peer).',
  ];

  it('a worker killed by SIGKILL is killed, though its peers echo HCCL errors and torchrun raised an exception', () => {
    const r = classifyFailure({ exitCode: 1, signal: null }, [
      ' iteration 3',
      ...hcclEcho,
      ...torchrunEnd([
        { rank: 0, exitcode: 1, pid: 10 },
        { rank: 1, exitcode: -9, pid: 11 },
      ]),
    ]);
    expect(r).toMatchObject({ class: 'killed', retryable: true });
    expect(r.reason).toMatch(/^rank 1 was killed by SIGKILL/);
    expect(r.excerpt.join('\n')).toContain('exitcode  : -9 (pid: 11)');
    expect(classifyFailure({ exitCode: 1, signal: null }, torchrunEnd([{ rank: 0, exitcode: -11, pid: 10 }])).class).toBe('segfault');
  });

  it('a worker that failed on its own is classified from its own lines, not from ChildFailedError', () => {
    const own = ['Traceback (most recent call last):', '  File "pretrain_gpt.py", line 262, in <module>', 'RuntimeError: boom'];
    const r = classifyFailure({ exitCode: 1, signal: null }, [...own, ...torchrunEnd([{ rank: 0, exitcode: 1, pid: 10 }])]);
    expect(r).toMatchObject({ class: 'exception', reason: 'RuntimeError: boom' });
    const usage = ['usage: pretrain_gpt.py [-h] ...', 'pretrain_gpt.py: error: unrecognized arguments: --bogus'];
    expect(classifyFailure({ exitCode: 1, signal: null }, [...usage, ...torchrunEnd([{ rank: 0, exitcode: 2, pid: 10 }])])).toMatchObject({
      class: 'bad-arguments',
      retryable: false,
    });
    // Nothing of its own: torchrun's report still names the rank and its exit code.
    expect(classifyFailure({ exitCode: 1, signal: null }, torchrunEnd([{ rank: 3, exitcode: 7, pid: 10 }]))).toMatchObject({
      class: 'unknown',
      reason: 'rank 3 exited with code 7 (torchrun)',
    });
  });

  it('torchrun stopped by a death signal is killed', () => {
    const lines = [
      'WARNING:torch.distributed.elastic.agent.server.api:Received Signals.SIGTERM death signal, shutting down workers',
      'Traceback (most recent call last):',
      'torch.distributed.elastic.multiprocessing.api.SignalException: Process 5 got signal: 15',
    ];
    expect(classifyFailure({ exitCode: 1, signal: null }, lines)).toMatchObject({
      class: 'killed',
      reason: 'torchrun received SIGTERM and shut its workers down',
    });
  });
});

describe('checkpoints', () => {
  function write(dir: string, iteration: number, shards: string[], tracker?: string) {
    for (const s of shards) {
      fs.mkdirSync(path.join(dir, `iter_${String(iteration).padStart(7, '0')}`, s), { recursive: true });
      fs.writeFileSync(path.join(dir, `iter_${String(iteration).padStart(7, '0')}`, s, 'model_optim_rng.pt'), 'x');
    }
    if (tracker !== undefined) fs.writeFileSync(path.join(dir, 'latest_checkpointed_iteration.txt'), tracker);
  }

  it('names shards as Megatron does', () => {
    expect(shardDirNames({ tp: 2, pp: 1 })).toEqual(['mp_rank_00', 'mp_rank_01']);
    expect(shardDirNames({ tp: 1, pp: 2 })).toEqual(['mp_rank_00_000', 'mp_rank_00_001']);
  });

  it('names expert-parallel shards mp_rank_XX[_YYY]_EEE (get_checkpoint_name: only when EP > 1)', () => {
    expect(shardDirNames({ tp: 1, pp: 1, ep: 1 })).toEqual(['mp_rank_00']);
    expect(shardDirNames({ tp: 1, pp: 1, ep: 2 })).toEqual(['mp_rank_00_000', 'mp_rank_00_001']);
    expect(shardDirNames({ tp: 2, pp: 1, ep: 2 })).toEqual(['mp_rank_00_000', 'mp_rank_00_001', 'mp_rank_01_000', 'mp_rank_01_001']);
    expect(shardDirNames({ tp: 1, pp: 2, ep: 2 })).toEqual(['mp_rank_00_000_000', 'mp_rank_00_000_001', 'mp_rank_00_001_000', 'mp_rank_00_001_001']);
    expect(describeLayout({ tp: 1, pp: 2, ep: 2 })).toBe('TP 1 × PP 2 × EP 2');
    expect(describeLayout({ tp: 1, pp: 2 })).toBe('TP 1 × PP 2');
  });

  it('finds an expert-parallel checkpoint only with every expert shard', () => {
    const dir = tempDir('ckpt');
    write(dir, 10, ['mp_rank_00_000', 'mp_rank_00_001']);
    write(dir, 20, ['mp_rank_00_000'], '20');
    expect(findResumePoint(dir, { tp: 1, pp: 1, ep: 2 })).toMatchObject({ kind: 'older', iteration: 10 });
    // Read as TP × PP alone, the same directory holds no checkpoint at all.
    expect(findResumePoint(dir, { tp: 1, pp: 1 }).kind).toBe('none');
  });

  it('a LoRA resume view: the LoRA tracker and optimizer state over the base model shards', () => {
    const view = loraResumeView(30, '/run/sft/checkpoints', { dir: '/run/weights', iteration: 1 }, { tp: 1, pp: 2 });
    expect(view.tracker).toBe('30');
    expect(view.links).toEqual([
      { link: 'iter_0000030/mp_rank_00_000/model_optim_rng.pt', target: '/run/weights/iter_0000001/mp_rank_00_000/model_optim_rng.pt' },
      { link: 'iter_0000030/mp_rank_00_000/distrib_optim.pt', target: '/run/sft/checkpoints/iter_0000030/mp_rank_00_000/distrib_optim.pt' },
      { link: 'iter_0000030/mp_rank_00_001/model_optim_rng.pt', target: '/run/weights/iter_0000001/mp_rank_00_001/model_optim_rng.pt' },
      { link: 'iter_0000030/mp_rank_00_001/distrib_optim.pt', target: '/run/sft/checkpoints/iter_0000030/mp_rank_00_001/distrib_optim.pt' },
    ]);
    expect(loraResumeView(10, '/l', { dir: '/b', iteration: 'release' }, { tp: 1, pp: 1, ep: 2 }).links.map((l) => l.target)).toEqual([
      '/b/release/mp_rank_00_000/model_optim_rng.pt',
      '/l/iter_0000010/mp_rank_00_000/distrib_optim.pt',
      '/b/release/mp_rank_00_001/model_optim_rng.pt',
      '/l/iter_0000010/mp_rank_00_001/distrib_optim.pt',
    ]);
  });

  it("resumes from the tracker's iteration when it is complete", () => {
    const dir = tempDir('ckpt');
    write(dir, 10, ['mp_rank_00_000', 'mp_rank_00_001']);
    write(dir, 20, ['mp_rank_00_000', 'mp_rank_00_001'], '20');
    expect(findResumePoint(dir, { tp: 1, pp: 2 })).toEqual({ kind: 'tracker', iteration: 20, dir });
  });

  it('falls back to the newest complete checkpoint below a torn one', () => {
    const dir = tempDir('ckpt');
    write(dir, 10, ['mp_rank_00_000', 'mp_rank_00_001']);
    write(dir, 20, ['mp_rank_00_000'], '20');
    const point = findResumePoint(dir, { tp: 1, pp: 2 });
    expect(point).toMatchObject({ kind: 'older', iteration: 10 });
    expect(point.kind === 'older' && point.reason).toMatch(/iter_0000020 is incomplete \(missing mp_rank_00_001\)/);
  });

  it('finds nothing in an empty directory', () => {
    expect(findResumePoint(tempDir('ckpt'), { tp: 1, pp: 1 }).kind).toBe('none');
  });
});

describe('failure excerpts', () => {
  it('show a traceback from its first line to the error', () => {
    const log = ['iteration 33', 'Traceback (most recent call last):', ...Array.from({ length: 12 }, (_, i) => `  frame ${i}`), 'RuntimeError: boom'];
    const r = classifyFailure({ exitCode: 1, signal: null }, log);
    expect(r.excerpt[0]).toBe('Traceback (most recent call last):');
    expect(r.excerpt.at(-1)).toBe('RuntimeError: boom');
  });
});

describe('NaN loss', () => {
  it("ModelLink's bf16 NaN check is a nan-loss failure, retried", () => {
    expect(
      classifyFailure({ exitCode: 1, signal: null }, [
        'Traceback (most recent call last):',
        'ValueError: Rank 0: found NaN in local forward loss calculation. Device: 0, node: host',
      ]),
    ).toMatchObject({ class: 'nan-loss', retryable: true });
  });
});

describe('NaN loss without the NaN check (bf16, --no-check-for-nan-in-loss-and-grad)', () => {
  const line = (it: number, fields: string) =>
    ` [2024-09-29 10:00:00] iteration ${String(it).padStart(8)}/     100 | consumed samples:           ${it * 8} | elapsed time per iteration (ms): 15.2 | learning rate: 1.000000E-04 | global batch size:     8 | ${fields}number of skipped iterations:   0 | number of nan iterations:   0 |`;
  const good = (it: number) => line(it, 'lm loss: 7.778504E+00 | loss scale: 1.0 | grad norm: 4.133 | ');
  const nan = (it: number) => line(it, 'loss scale: 1.0 | grad norm: nan | ');

  it('a line without lm loss after lines with one is a NaN loss, though the nan counter stays 0', () => {
    const progress: AttemptProgress = {};
    applyLogEvent(progress, parseLogLine(good(4))!);
    expect(progress.nanLoss).toBeUndefined();
    applyLogEvent(progress, parseLogLine(nan(5).replace('grad norm: nan | ', ''))!);
    expect(progress.nanLoss).toBe(true);
  });

  it('so is a first line without lm loss and with a NaN gradient norm', () => {
    const progress: AttemptProgress = {};
    applyLogEvent(progress, parseLogLine(nan(1))!);
    expect(progress.nanLoss).toBe(true);
  });

  it("fp16's skipped steps (no lm loss, skipped > 0, no NaN) are not a NaN loss", () => {
    const progress: AttemptProgress = {};
    applyLogEvent(progress, parseLogLine(good(1))!);
    applyLogEvent(progress, parseLogLine(line(2, 'loss scale: 2147483648.0 | ').replace('skipped iterations:   0', 'skipped iterations:   1'))!);
    expect(progress.nanLoss).toBeUndefined();
  });

  it('the failure names the first iteration that showed it', () => {
    const r = classifyFailure({ exitCode: null, signal: 'SIGTERM' }, [good(3), good(4), nan(5), nan(6)], 'nan-loss');
    expect(r).toMatchObject({ class: 'nan-loss', retryable: true });
    expect(r.reason).toContain('at iteration 5');
    expect(r.excerpt).toContain(nan(5));
  });
});

describe('layout mismatch', () => {
  it("Megatron's TP/PP check against a checkpoint is not retried", () => {
    expect(
      classifyFailure({ exitCode: 1, signal: null }, [
        'AssertionError: tensor_model_parallel_size value from checkpoint (2) is not equal to the input argument value (1).',
      ]),
    ).toMatchObject({ class: 'bad-arguments', retryable: false });
  });
});

describe('hang windows', () => {
  const w = { minMs: 60_000, factor: 20, startupMs: 1_800_000, checkpointMs: 900_000, logInterval: 10 };
  it('follow the observed iteration time, never below the floor', async () => {
    const { noProgressWindowMs } = await import('../failures/hang.ts');
    expect(noProgressWindowMs(w, 'training', 100)).toBe(60_000);
    // 5 s per iteration, a line every 10 iterations: silence up to 20 × 50 s.
    expect(noProgressWindowMs(w, 'training', 5000)).toBe(1_000_000);
    expect(noProgressWindowMs(w, 'training', undefined)).toBe(60_000);
  });
  it('are longer while the job starts and while it saves a checkpoint', async () => {
    const { noProgressWindowMs } = await import('../failures/hang.ts');
    expect(noProgressWindowMs(w, 'startup', 100)).toBe(1_800_000);
    expect(noProgressWindowMs(w, 'checkpoint', 100)).toBe(900_000);
  });
});

describe('save directory lease', () => {
  it('is held only by a fresh lease of another owner that may still be alive', async () => {
    const { leaseHeld } = await import('../activities/lease.ts');
    const os = await import('node:os');
    const now = 1_000_000;
    const other = { owner: 'wf/run/attempt-1', host: 'elsewhere', pid: 1, renewedAt: now - 1000 };
    expect(leaseHeld(other, 'wf/run/attempt-2', 10_000, now)).toBe(true);
    expect(leaseHeld({ ...other, renewedAt: now - 20_000 }, 'wf/run/attempt-2', 10_000, now)).toBe(false);
    expect(leaseHeld({ ...other, released: true }, 'wf/run/attempt-2', 10_000, now)).toBe(false);
    expect(leaseHeld(other, 'wf/run/attempt-1', 10_000, now)).toBe(false);
    // On this host a dead owner is known to be dead.
    expect(leaseHeld({ ...other, host: os.hostname(), pid: 2 ** 22 + 12345 }, 'x', 10_000, now)).toBe(false);
    expect(leaseHeld(undefined, 'x', 10_000, now)).toBe(false);
  });
});

describe('save interval advice', () => {
  it("follows Young's and Daly's formulas", async () => {
    const { youngIntervalMs, dalyIntervalMs } = await import('../plan/advise.ts');
    // A 60 s checkpoint and a failure a day: Young's √(2·60·86400) s ≈ 3220 s; Daly's is a little shorter.
    expect(youngIntervalMs(60_000, 86_400_000) / 1000).toBeCloseTo(3219.9, 0);
    const daly = dalyIntervalMs(60_000, 86_400_000, 0) / 1000;
    expect(daly).toBeGreaterThan(3170);
    expect(daly).toBeLessThan(3190);
    // Checkpoints slower than twice the failure interval: save once per failure interval.
    expect(dalyIntervalMs(300_000, 100_000, 0)).toBe(100_000);
  });

  it("reads a stage's attempt log: failures, save cost, recovery", async () => {
    const { adviseSaveInterval, observationsOf } = await import('../plan/advise.ts');
    const observed = observationsOf({
      name: 'pretrain',
      kind: 'pretrain',
      status: 'succeeded',
      output: '/x',
      saveInterval: 100,
      attempts: [
        {
          attempt: 1,
          outcome: 'failed',
          failureClass: 'communication',
          startedAt: 0,
          endedAt: 3_600_000,
          timings: { saves: 10, saveMsTotal: 300_000, msPerIteration: 1000, startupMs: 60_000 },
        },
        {
          attempt: 2,
          outcome: 'succeeded',
          startedAt: 3_630_000,
          endedAt: 7_230_000,
          timings: { saves: 10, saveMsTotal: 300_000, msPerIteration: 1000, startupMs: 90_000 },
        },
      ],
    });
    expect(observed).toEqual({ runMs: 7_200_000, failures: 1, saveMs: 30_000, recoveryMs: 120_000, iterationMs: 1000, saveInterval: 100 });
    const advice = adviseSaveInterval(observed!)!;
    expect(advice.mtbfMs).toBe(7_200_000);
    expect(advice.recommendedIterations).toBe(Math.round(advice.dalyMs / 1000));
    expect(advice.wasteRecommended).toBeLessThan(advice.wasteNow);
  });

  it('applied automatically: the next interval is the advice, capped at the run length, and nothing changes without failures', async () => {
    const { autoSaveInterval } = await import('../plan/advise.ts');
    const failedOnce = {
      name: 'pretrain',
      kind: 'pretrain' as const,
      status: 'retrying' as const,
      output: '/x',
      saveInterval: 10,
      attempts: [
        {
          attempt: 1,
          outcome: 'failed' as const,
          failureClass: 'communication' as const,
          startedAt: 0,
          endedAt: 600_000,
          timings: { saves: 60, saveMsTotal: 60_000, msPerIteration: 100 },
        },
      ],
    };
    // One failure in 10 min, 1 s saves: Daly's interval is ≈ 34 s, i.e. about 340 iterations of 100 ms.
    const auto = autoSaveInterval(failedOnce, 10_000)!;
    expect(auto.interval).toBeGreaterThan(300);
    expect(auto.interval).toBeLessThan(360);
    expect(auto.reason).toContain(`save interval 10 → ${auto.interval} iterations`);
    expect(autoSaveInterval(failedOnce, 200)!.interval).toBe(200);
    expect(
      autoSaveInterval({ ...failedOnce, attempts: [{ ...failedOnce.attempts[0], outcome: 'succeeded' as const, failureClass: undefined }] }, 10_000),
    ).toBeUndefined();
  });
});

describe('lease fencing', () => {
  it('a trainer whose lease was taken over cannot renew or release it', async () => {
    const { acquireLease, readLease } = await import('../activities/lease.ts');
    const fsMod = await import('node:fs');
    const pathMod = await import('node:path');
    const dir = tempDir('lease');
    const first = await acquireLease(dir, 'run-1/attempt-1', 10_000, () => undefined);
    expect(first.lease.renew()).toBe(true);
    // Another attempt takes over (as after Temporal timed the first one out).
    fsMod.writeFileSync(
      pathMod.join(dir, 'linkflow-lease.json'),
      JSON.stringify({ owner: 'run-1/attempt-2', host: 'elsewhere', pid: 1, renewedAt: Date.now() }),
    );
    expect(first.lease.renew()).toBe(false);
    first.lease.release();
    expect(readLease(dir)).toMatchObject({ owner: 'run-1/attempt-2' });
    expect(readLease(dir)?.released).toBeUndefined();
  });
});

describe('a retry line says the class and one line of the cause', () => {
  it('a 600-character CANN message becomes its code and first sentence', () => {
    const ei0002 =
      'EI0002: [PID: 2969] 2025-10-11-15:09:34.713.335 The wait execution of the Notify register times out. Reason: The Notify register has not received the Notify record from remote rank: [24]. base information: [streamID:[109], taskID[3]] ' +
      'x'.repeat(400);
    expect(retryCause('hang', ei0002)).toBe('hang: EI0002: The wait execution of the Notify register times out.');
    const ez = `EZ9999: 2026-12-07-09:20:49.582.622  The error from device(chipId:0, dieId:0), there is an aicore error, ${'dump info: 0x0, '.repeat(40)}[FUNC:ProcessStarsCoreErrorInfo][FILE:device_error_proc.cc][LINE:1169]`;
    expect(causeInOneLine(ez).length).toBeLessThanOrEqual(CAUSE_LINE_MAX);
    expect(causeInOneLine(ez)).toMatch(/^EZ9999: The error from device\(chipId:0, dieId:0\), there is an aicore error/);
    expect(retryCause('exception', "KeyError: 'input_ids'")).toBe("exception: KeyError: 'input_ids'");
    expect(retryCause('communication', 'torch.distributed.DistStoreError: Timed out after 600 seconds waiting for clients. 1/2 clients joined.')).toBe(
      'communication: DistStoreError: Timed out after 600 seconds waiting for clients.',
    );
  });
});
