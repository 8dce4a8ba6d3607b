/** The `linkflow` command without a server: validation, rendering, and a clear word when no server answers. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { getFreePort } from '../node/free-port.ts';
import { runCli } from '../testkit/cli.ts';
import { DEMO, EMULATOR, fiveStageSpec, tempDir, writeSpec } from '../testkit/specs.ts';

describe('linkflow CLI', () => {
  it('validate: an invalid spec exits 2 and lists each problem with its path', async () => {
    const dir = tempDir('cli');
    const spec = fiveStageSpec('bad', path.join(dir, 'ws'));
    (spec.stages[3] as Record<string, unknown>).trainIters = 0;
    (spec.stages[5] as Record<string, unknown>).tasks = [];
    const r = await runCli(['validate', writeSpec(dir, spec)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('stages[3].trainIters: expected a positive integer');
    expect(r.stderr).toContain('stages[5].tasks: expected at least one task');
  });

  it('run: an invalid spec exits 2 before anything starts', async () => {
    const dir = tempDir('cli');
    const spec = fiveStageSpec('bad', path.join(dir, 'ws'));
    (spec.stages[3] as Record<string, unknown>).saveInterval = -1;
    const r = await runCli(['run', writeSpec(dir, spec, 'pipeline.json')], { TEMPORAL_ADDRESS: `127.0.0.1:${await getFreePort()}` });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('stages[3].saveInterval: expected a positive integer');
    expect(fs.existsSync(path.join(dir, 'ws'))).toBe(false);
  });

  it('run: with no reachable server, says how to start one and exits non-zero', async () => {
    const dir = tempDir('cli');
    const r = await runCli(['run', writeSpec(dir, fiveStageSpec('ok', path.join(dir, 'ws')))], { TEMPORAL_ADDRESS: `127.0.0.1:${await getFreePort()}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no Temporal server reachable at 127\.0\.0\.1:\d+/);
    expect(r.stderr).toContain('linkflow dev');
  });

  it('run: a multi-node spec whose hosts do not match its nodes is refused before anything starts (exit 2)', async () => {
    const dir = tempDir('cli');
    const spec = fiveStageSpec('multi', path.join(dir, 'ws'));
    spec.cluster = { nodes: 2, devicesPerNode: 1, hosts: ['a', 'a', 'b'] };
    const file = writeSpec(dir, spec);
    const r = await runCli(['run', file], { TEMPORAL_ADDRESS: `127.0.0.1:${await getFreePort()}` });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('cluster.hosts: names 3 hosts for 2 nodes');
    expect(r.stderr).toContain('cluster.hosts[1]: "a" is already hosts[0]');
    spec.cluster = { nodes: 2, devicesPerNode: 1, hosts: ['a', 'b'] };
    expect((await runCli(['validate', writeSpec(dir, spec)])).code).toBe(0);
  });

  it('render: prints each stage argv, and --sh quotes values safely', async () => {
    const dir = tempDir('cli');
    const spec = fiveStageSpec('quote', path.join(dir, "my ws's"));
    const file = writeSpec(dir, spec);
    const argv = await runCli(['render', file]);
    expect(argv.code).toBe(0);
    const lines = argv.stdout.split('\n').filter((l) => l.startsWith('['));
    expect(lines).toHaveLength(7);
    expect(JSON.parse(lines[3])).toContain('pretrain_gpt.py');
    const sh = await runCli(['render', file, '--sh']);
    expect(sh.stdout).toContain(`'${path.join(dir, "my ws'\\''s")}/quote/pretrain/checkpoints'`);
  });

  it('presets: lists llama2-7b with the table throughput', async () => {
    const r = await runCli(['presets']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/llama2-7b .*4672 tokens\/s\/device/);
  });
});

describe('linkflow diagnose', () => {
  /** A manual run of the emulator's torchrun with 4 ranks whose rank 0 runs out of device memory: its log as `| tee` writes it. */
  function oomLog(dir: string, port: number): string {
    const r = spawnSync(
      path.join(EMULATOR, 'torchrun'),
      [
        '--nproc_per_node',
        '4',
        '--nnodes',
        '1',
        '--node_rank',
        '0',
        '--master_addr',
        'localhost',
        '--master_port',
        String(port),
        path.join(EMULATOR, 'pretrain_gpt.py'),
        '--use-mcore-models',
        '--num-layers',
        '2',
        '--hidden-size',
        '64',
        '--num-attention-heads',
        '4',
        '--tokenizer-type',
        'PretrainedFromHF',
        '--tokenizer-name-or-path',
        path.join(DEMO, 'hf-tiny'),
        '--seq-length',
        '32',
        '--max-position-embeddings',
        '32',
        '--micro-batch-size',
        '1',
        '--global-batch-size',
        '8',
        '--lr',
        '1e-4',
        '--train-iters',
        '10',
        '--mock-data',
        '--log-interval',
        '1',
        '--bf16',
        '--save',
        path.join(dir, 'ckpt'),
        '--save-interval',
        '5',
      ],
      { cwd: dir, encoding: 'utf8', env: { ...process.env, MLEMU_ITER_TIME_MS: '5', MLEMU_FAULTS: 'oom@7' } },
    );
    expect(r.status).toBe(1);
    const file = path.join(dir, 'train.log');
    fs.writeFileSync(file, r.stdout + r.stderr);
    return file;
  }

  it('classifies a log file of a failed manual run: class, retryable, the deciding line, the excerpt (text and --json)', async () => {
    const dir = tempDir('diagnose');
    const file = oomLog(dir, await getFreePort());
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    // The other ranks' HCCL errors come after the OOM: the root cause still decides.
    const lastHccl = lines.length - 1 - [...lines].reverse().findIndex((l) => l.includes('HCCL'));
    expect(lastHccl).toBeGreaterThan(lines.findIndex((l) => l.includes('NPU out of memory')));

    const text = await runCli(['diagnose', file]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`${file}: out-of-memory`);
    expect(text.stdout).toContain('retryable (an error of the job: maxAttempts budget)');
    const decided = /decided by line (\d+): (.*)/.exec(text.stdout)!;
    expect(lines[Number(decided[1]) - 1].trim()).toBe(decided[2]);
    expect(decided[2]).toMatch(/^RuntimeError: NPU out of memory\. Tried to allocate/);

    const json = await runCli(['diagnose', file, '--json']);
    expect(json.code).toBe(0);
    const d = JSON.parse(json.stdout);
    expect(d).toMatchObject({ file, failed: true, class: 'out-of-memory', retryable: true, budget: 'job', lines: lines.length - 1 });
    expect(d.line.number).toBe(Number(decided[1]));
    expect(d.excerpt.some((l: string) => l.startsWith('RuntimeError: NPU out of memory'))).toBe(true);
  });

  it("infers a signal kill from torchrun's error block, and says when a log shows no failure", async () => {
    const dir = tempDir('diagnose');
    const killed = path.join(dir, 'killed.log');
    fs.writeFileSync(
      killed,
      [
        ' [2024-09-29 10:00:00] iteration       41/    2000 | lm loss: 1.875432E+00 |',
        'torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ',
        '============================================================',
        'pretrain_gpt.py FAILED',
        '------------------------------------------------------------',
        'Failures:',
        '  <NO_OTHER_FAILURES>',
        '------------------------------------------------------------',
        'Root Cause (first observed failure):',
        '[0]:',
        '  time      : 2024-09-29_10:00:05',
        '  host      : node0',
        '  rank      : 3 (local_rank: 3)',
        '  exitcode  : -9 (pid: 4321)',
        '  error_file: <N/A>',
        '  traceback : Signal 9 (SIGKILL) received by PID 4321',
        '============================================================',
      ].join('\n') + '\n',
    );
    const r = await runCli(['diagnose', killed, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      class: 'killed',
      retryable: true,
      budget: 'infrastructure',
      exitStatus: { exitCode: null, signal: 'SIGKILL', source: 'torchrun' },
    });

    // An attempt log in which linkflow's watcher stopped a hung trainer.
    const hung = path.join(dir, 'hung.log');
    fs.writeFileSync(
      hung,
      [
        ' [2024-09-29 10:00:00] iteration       41/    2000 | lm loss: 1.875432E+00 |',
        'linkflow: no progress for 31 s during training (window 30.0 s); killing the process group',
        '# launched 2024-09-29T10:00:00.000Z, exited 2024-09-29T10:01:00.000Z (SIGTERM) after 60.000 s',
      ].join('\n') + '\n',
    );
    expect(JSON.parse((await runCli(['diagnose', hung, '--json'])).stdout)).toMatchObject({
      class: 'hang',
      budget: 'infrastructure',
      exitStatus: { signal: 'SIGTERM', source: 'linkflow' },
    });

    const fine = path.join(dir, 'fine.log');
    fs.writeFileSync(
      fine,
      ' [2024-09-29 10:00:00] iteration       10/      10 | lm loss: 1.875432E+00 | number of skipped iterations:   0 | number of nan iterations:   0 |\n',
    );
    const none = await runCli(['diagnose', fine]);
    expect(none.code).toBe(1);
    expect(none.stdout).toContain('no failure found');
  });

  it('reads a NaN loss that ModelLink did not check from the iteration lines, and a large log as a stream', async () => {
    const dir = tempDir('diagnose');
    const file = path.join(dir, 'nan.log');
    const line = (it: number, loss: string) =>
      ` [2024-09-29 10:00:00] iteration ${String(it).padStart(8)}/  200000 | consumed samples: ${String(it * 8).padStart(12)} | elapsed time per iteration (ms): 15.0 | learning rate: 1.000000E-04 | global batch size:     8 | ${loss}loss scale: 1.0 | grad norm: ${loss ? '4.133' : 'nan'} | number of skipped iterations:   0 | number of nan iterations:   0 |\n`;
    const out = fs.openSync(file, 'w');
    for (let i = 1; i <= 150_000; i++) fs.writeSync(out, line(i, 'lm loss: 7.778504E+00 | '));
    fs.writeSync(out, line(150_001, ''));
    fs.closeSync(out);
    const r = await runCli(['diagnose', file, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d).toMatchObject({ class: 'nan-loss', retryable: true, lines: 150_001, line: { number: 150_001 } });
    expect(d.reason).toBe('the loss became NaN at iteration 150001');
  });

  it('a missing file or a bad exit code is bad input (exit 2)', async () => {
    const missing = await runCli(['diagnose', '/nonexistent/train.log']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('/nonexistent/train.log: no such file');
    const dir = tempDir('diagnose');
    expect((await runCli(['diagnose', dir])).stderr).toContain('not a file');
    const file = path.join(dir, 'x.log');
    fs.writeFileSync(file, 'hello\n');
    const bad = await runCli(['diagnose', file, '--exit-code', 'boom']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--exit-code: expected');
  });
});
