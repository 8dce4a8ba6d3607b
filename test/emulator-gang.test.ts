/**
 * The emulator's multi-node gang (emulator/mlemu/gang.py): nodes started by the torchrun stand-in
 * with --nnodes > 1 rendezvous over TCP on localhost, train in lock-step, fail together and re-form.
 * Each node is a child process in its own process group; every test has a deadline and kills the groups it started.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { classifyFailure } from '../failures/failures.ts';
import { iterations } from '../testkit/emulator-log.ts';
import { untilTrue, within } from '../testkit/wait.ts';
import { tinyModelArgs, tinyTrainArgs } from '../testkit/emulator-args.ts';
import { getFreePort } from '../node/free-port.ts';
import { spawnGroup, stopGroup } from '../testkit/processes.ts';

const EMULATOR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'emulator');
const PYTHON = process.env.PYTHON ?? 'python3';
const PEER_LOST = /RuntimeError: \[Rank \d+\] HCCL AllReduce failed: lost the connection to remote rank \[(\d+)\]/;

let tmp: string;
let hf: string;
let dataPrefix: string;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number; // Date.now() when the process exited
}

interface Node {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<Exit>;
}

const running = new Set<ChildProcess>();

/** One node of a gang: the emulator's torchrun (the elastic agent) with this node's rank; its worker runs pretrain_gpt.py. */
function startNode(opts: { rank: number; nodes: number; port: number; args: string[]; env?: Record<string, string>; script?: string; nproc?: number }): Node {
  const argv = [
    '--nnodes',
    String(opts.nodes),
    '--node_rank',
    String(opts.rank),
    '--nproc_per_node',
    String(opts.nproc ?? 1),
    '--master_addr',
    '127.0.0.1',
    '--master_port',
    String(opts.port),
    path.join(EMULATOR, opts.script ?? 'pretrain_gpt.py'),
    ...opts.args,
  ];
  const child = spawnGroup(path.join(EMULATOR, 'torchrun'), argv, {
    cwd: tmp,
    env: { ...process.env, MLEMU_ITER_TIME_MS: '10', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<Exit>((resolve) =>
    child.on('close', (code, signal) => {
      running.delete(child);
      resolve({ code, signal, at: Date.now() });
    }),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

function startGang(nodes: number, port: number, args: (rank: number) => string[], env: (rank: number) => Record<string, string> = () => ({})): Node[] {
  return Array.from({ length: nodes }, (_, rank) => startNode({ rank, nodes, port, args: args(rank), env: env(rank) }));
}

const all = (nodes: Node[], ms: number) => within(Promise.all(nodes.map((n) => n.exited)), ms, 'gang did not exit');

const logLines = (n: Node) => [...n.stdout().split('\n'), ...n.stderr().split('\n')].filter((l) => l !== '');

/** The tiny model with PP = number of nodes, so every node owns a shard. */
function trainArgs(opts: { pp: number; save: string; iters: number; load?: string; saveInterval?: number; extra?: string[] }): string[] {
  return tinyTrainArgs({ ...opts, tokenizer: hf, dataPrefix });
}

const shards = (save: string, iteration: number) => fs.readdirSync(path.join(save, `iter_${String(iteration).padStart(7, '0')}`)).sort();
const tracker = (save: string) => fs.readFileSync(path.join(save, 'latest_checkpointed_iteration.txt'), 'utf8');

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'linkflow-emulator-gang-'));
  hf = path.join(tmp, 'hf');
  const fixtures = path.join(EMULATOR, 'tools', 'make_fixtures.py');
  for (const args of [
    ['hf-model', hf],
    ['pretrain-jsonl', path.join(tmp, 'corpus.jsonl'), '--docs', '60'],
  ]) {
    const r = spawnSync(PYTHON, [fixtures, ...args], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
  }
  fs.mkdirSync(path.join(tmp, 'data'));
  const r = spawnSync(
    PYTHON,
    [
      path.join(EMULATOR, 'preprocess_data.py'),
      '--input',
      path.join(tmp, 'corpus.jsonl'),
      '--tokenizer-name-or-path',
      hf,
      '--output-prefix',
      path.join(tmp, 'data', 'corpus'),
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  expect(r.status, r.stderr).toBe(0);
  dataPrefix = path.join(tmp, 'data', 'corpus_text_document');
});

// The whole group: a rank of a SIGKILLed agent (a hang) would otherwise run on under init.
afterEach(async () => {
  await Promise.all([...running].map((child) => stopGroup(child, 0)));
  running.clear();
});

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('emulator gang (torchrun --nnodes > 1)', () => {
  it('two nodes rendezvous, train in lock-step, each writes its own shards, and the tracker follows both', async () => {
    const port = await getFreePort();
    const save = path.join(tmp, 'formed');
    // Node 1 first: it must wait at the rendezvous until node 0 listens.
    const node1 = startNode({ rank: 1, nodes: 2, port, args: trainArgs({ pp: 2, save, iters: 20 }) });
    await new Promise((r) => setTimeout(r, 1000));
    expect(node1.child.exitCode).toBeNull();
    expect(iterations(node1.stdout())).toEqual([]);
    const node0 = startNode({ rank: 0, nodes: 2, port, args: trainArgs({ pp: 2, save, iters: 20 }) });
    const [e0, e1] = await all([node0, node1], 60_000);
    expect(e0.code, node0.stderr()).toBe(0);
    expect(e1.code, node1.stderr()).toBe(0);
    // Rank-0 lines from node 0, the training log line (last rank) from node 1.
    expect(node0.stdout()).toContain('> initializing torch distributed ...');
    expect(iterations(node0.stdout())).toEqual([]);
    expect(iterations(node1.stdout())).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(node0.stdout()).toContain(`  successfully saved checkpoint at iteration      20 to ${save}`);
    for (const it of [10, 20]) expect(shards(save, it)).toEqual(['mp_rank_00_000', 'mp_rank_00_001']);
    expect(tracker(save)).toBe('20');
    expect(node0.stderr() + node1.stderr()).toBe('');
  });

  it('a node-scoped crash on node 1 fails node 0 at once with an HCCL error; the gang re-forms from the checkpoint and the fault does not fire again', async () => {
    const save = path.join(tmp, 'crash');
    const env = { MLEMU_FAULTS: 'pretrain:node1:crash@15' };
    const first = startGang(
      2,
      await getFreePort(),
      () => trainArgs({ pp: 2, save, iters: 20 }),
      () => env,
    );
    const [e0, e1] = await all(first, 60_000);
    const [node0, node1] = first;
    // Node 1: its own crash (CANN EZ9999 + RuntimeError), after logging iteration 14.
    expect(e1.code).toBe(1);
    expect(node1.stderr()).toContain('EZ9999: Inner Error!');
    expect(Math.max(...iterations(node1.stdout()))).toBe(14);
    expect(fs.existsSync(path.join(save, '.mlemu-fired-node1-crash@15'))).toBe(true);
    // Node 0: lost its peer, promptly (not after HCCL_EXEC_TIMEOUT), non-zero, HCCL error naming rank 1.
    expect(e0.code).toBe(1);
    expect(e0.at - e1.at).toBeLessThan(5_000);
    expect(node0.stderr()).toContain('ERR02200 DIST call hccl api failed.');
    expect(PEER_LOST.exec(node0.stderr())?.[1]).toBe('1');
    expect(node0.stderr()).not.toContain('EZ9999');
    // linkflow's classifier: node 0 failed on communication, node 1 on its own exception.
    expect(classifyFailure({ exitCode: e0.code, signal: e0.signal }, logLines(node0)).class).toBe('communication');
    expect(classifyFailure({ exitCode: e1.code, signal: e1.signal }, logLines(node1)).class).toBe('exception');
    expect(tracker(save)).toBe('10');

    // The same gang again, resuming: the marker disarms the fault, both finish.
    const again = startGang(
      2,
      await getFreePort(),
      () => trainArgs({ pp: 2, save, load: save, iters: 20 }),
      () => env,
    );
    const [a0, a1] = await all(again, 60_000);
    expect(a0.code, again[0].stderr()).toBe(0);
    expect(a1.code, again[1].stderr()).toBe(0);
    expect(again[0].stdout()).toContain(` loading checkpoint from ${save} at iteration 10`);
    expect(iterations(again[1].stdout())).toEqual(Array.from({ length: 10 }, (_, i) => i + 11));
    expect(tracker(save)).toBe('20');
  });

  it('node 0’s worker SIGKILLed: its torchrun reports it in ChildFailedError (killed); node 1 exits promptly with the HCCL error', async () => {
    const save = path.join(tmp, 'kill0');
    const gang = startGang(
      2,
      await getFreePort(),
      () => trainArgs({ pp: 2, save, iters: 20 }),
      () => ({ MLEMU_FAULTS: 'node0:sigkill@5' }),
    );
    const [e0, e1] = await all(gang, 60_000);
    // The agent outlives its worker (torch.distributed.run): exit 1 and the failure block, not the signal.
    expect(e0.code).toBe(1);
    expect(e0.signal).toBeNull();
    expect(gang[0].stderr()).toMatch(
      /\n {2}rank {6}: 0 \(local_rank: 0\)\n {2}exitcode {2}: -9 \(pid: (\d+)\)\n {2}error_file: <N\/A>\n {2}traceback : Signal 9 \(SIGKILL\) received by PID \1\n/,
    );
    expect(e1.code).toBe(1);
    expect(Math.abs(e1.at - e0.at)).toBeLessThan(5_000);
    expect(PEER_LOST.exec(gang[1].stderr())?.[1]).toBe('0');
    expect(gang[1].stderr()).toContain('exitcode  : 1 (pid: ');
    expect(gang[1].stderr()).toContain('traceback : To enable traceback see: https://pytorch.org/docs/stable/elastic/errors.html');
    expect(classifyFailure({ exitCode: e0.code, signal: e0.signal }, logLines(gang[0])).class).toBe('killed');
    expect(classifyFailure({ exitCode: e1.code, signal: e1.signal }, logLines(gang[1])).class).toBe('communication');
  });

  it('an unscoped fault in a gang that shares --save fires on exactly one node', async () => {
    const save = path.join(tmp, 'unscoped');
    const gang = startGang(
      2,
      await getFreePort(),
      () => trainArgs({ pp: 2, save, iters: 20 }),
      () => ({ MLEMU_FAULTS: 'crash@5' }),
    );
    const exits = await all(gang, 60_000);
    expect(exits.map((e) => e.code)).toEqual([1, 1]);
    const crashed = gang.filter((n) => n.stderr().includes('EZ9999: Inner Error!'));
    const lost = gang.filter((n) => PEER_LOST.test(n.stderr()));
    expect([crashed.length, lost.length]).toEqual([1, 1]);
    expect(fs.existsSync(path.join(save, '.mlemu-fired-crash@5'))).toBe(true);
  });

  it('a silent (hung) node makes the others fail after HCCL_EXEC_TIMEOUT with HCCL’s EI0002 timeout', async () => {
    const save = path.join(tmp, 'hang');
    const gang = startGang(
      2,
      await getFreePort(),
      () => trainArgs({ pp: 2, save, iters: 20 }),
      () => ({ MLEMU_FAULTS: 'node1:hang@5', HCCL_EXEC_TIMEOUT: '2' }),
    );
    const [node0, node1] = gang;
    await untilTrue(() => iterations(node1.stdout()).includes(4), 30_000, 'node 1 reaching iteration 4');
    const stalled = Date.now();
    const e0 = await within(node0.exited, 30_000, 'node 0 did not time out');
    expect(e0.code).toBe(1);
    expect(e0.at - stalled).toBeGreaterThanOrEqual(1_500);
    expect(node0.stderr()).toContain('EI0002');
    expect(node0.stderr()).toMatch(/\nRuntimeError: \[Rank 0\] HCCL AllReduce timeout: notify wait timeout \(EI0002\)/);
    // A collective that waited for a stuck peer is a hang (EI0002; real log: https://github.com/vllm-project/vllm-ascend/issues/3413).
    expect(classifyFailure({ exitCode: e0.code, signal: e0.signal }, logLines(node0)).class).toBe('hang');
    expect(node1.child.exitCode).toBeNull(); // still hung: the orchestrator has to kill it
  });

  it('times out at the rendezvous like torch when the other node never comes (both sides)', async () => {
    const env = { MLEMU_RDZV_TIMEOUT_S: '2' };
    // Different ports: a lone node 1 (nobody listens) and a lone node 0 (nobody connects).
    const [p1, p0] = [await getFreePort(), await getFreePort()];
    const t0 = Date.now();
    const lone1 = startNode({ rank: 1, nodes: 2, port: p1, args: trainArgs({ pp: 2, save: path.join(tmp, 'lone1'), iters: 5 }), env });
    const lone0 = startNode({ rank: 0, nodes: 2, port: p0, args: trainArgs({ pp: 2, save: path.join(tmp, 'lone0'), iters: 5 }), env });
    const [e1, e0] = await all([lone1, lone0], 30_000);
    expect(e1.code).toBe(1);
    expect(e0.code).toBe(1);
    expect(Math.max(e0.at, e1.at) - t0).toBeGreaterThanOrEqual(2_000);
    expect(lone1.stderr()).toContain(
      `\ntorch.distributed.DistNetworkError: The client socket has timed out after 2s while trying to connect to (127.0.0.1, ${p1}).`,
    );
    expect(lone0.stderr()).toContain('\ntorch.distributed.DistStoreError: Timed out after 2 seconds waiting for clients. 1/2 clients joined.');
    expect(lone1.stderr()).toContain('in init_process_group');
    expect(iterations(lone1.stdout())).toEqual([]);
  });

  it('SIGTERM to node 1’s torchrun only, with --exit-signal-handler: it passes it to its worker, both nodes save the same iteration; node 0 exits 0, node 1’s agent dies of the signal', async () => {
    const save = path.join(tmp, 'sigterm');
    // A save interval that is never reached: the only checkpoint is the SIGTERM one.
    const gang = startGang(2, await getFreePort(), () => trainArgs({ pp: 2, save, iters: 2000, saveInterval: 1000, extra: ['--exit-signal-handler'] }));
    const [node0, node1] = gang;
    await untilTrue(() => iterations(node1.stdout()).length >= 3, 30_000, 'node 1 training');
    node1.child.kill('SIGTERM');
    const [e0, e1] = await all(gang, 30_000);
    expect(e0.code, node0.stderr()).toBe(0);
    expect(node0.stderr()).toBe('');
    // torch.distributed.run: the agent forwards the signal, waits for its worker, then raises SignalException.
    expect(e1.code, node1.stderr()).toBe(1);
    expect(node1.stderr()).toContain('WARNING:torch.distributed.elastic.agent.server.api:Received Signals.SIGTERM death signal, shutting down workers\n');
    expect(node1.stderr()).toMatch(/\ntorch\.distributed\.elastic\.multiprocessing\.api\.SignalException: Process \d+ got signal: 15\n$/);
    const last = Math.max(...iterations(node1.stdout()));
    expect(last).toBeLessThan(2000);
    expect(node0.stdout()).toContain(`saving checkpoint at iteration ${String(last).padStart(7)} to ${save}`);
    expect(shards(save, last)).toEqual(['mp_rank_00_000', 'mp_rank_00_001']);
    expect(tracker(save)).toBe(String(last));
    expect(classifyFailure({ exitCode: e1.code, signal: e1.signal }, logLines(node1)).class).toBe('killed');
  });

  it('a gang of four nodes forms and trains (PP 4, one shard per node)', async () => {
    const save = path.join(tmp, 'four');
    const gang = startGang(4, await getFreePort(), () => trainArgs({ pp: 4, save, iters: 3, saveInterval: 3 }));
    const exits = await all(gang, 60_000);
    exits.forEach((e, k) => expect(e.code, gang[k].stderr()).toBe(0));
    expect(iterations(gang[3].stdout())).toEqual([1, 2, 3]);
    expect(shards(save, 3)).toEqual(['mp_rank_00_000', 'mp_rank_00_001', 'mp_rank_00_002', 'mp_rank_00_003']);
    expect(tracker(save)).toBe('3');
  });

  it('two nodes of two ranks each (TP 2, PP 2): the four rank processes train in lock-step and each writes its own shard', async () => {
    const save = path.join(tmp, 'two-by-two');
    const port = await getFreePort();
    const args = [...trainArgs({ pp: 2, save, iters: 4, saveInterval: 2 }), '--tensor-model-parallel-size', '2'];
    const gang = [0, 1].map((rank) => startNode({ rank, nodes: 2, port, args, nproc: 2 }));
    const exits = await all(gang, 60_000);
    exits.forEach((e, k) => expect(e.code, gang[k].stderr()).toBe(0));
    // Rank 0 (node 0) prints rank-0 lines; the last rank (3, on node 1) the training log.
    expect(gang[0].stdout()).toContain('successfully saved checkpoint at iteration       4');
    expect(gang[1].stdout()).not.toContain('successfully saved checkpoint');
    expect(iterations(gang[0].stdout())).toEqual([]);
    expect(iterations(gang[1].stdout())).toEqual([1, 2, 3, 4]);
    expect(shards(save, 4)).toEqual(['mp_rank_00_000', 'mp_rank_00_001', 'mp_rank_01_000', 'mp_rank_01_001']);
    expect(tracker(save)).toBe('4');
  });

  it('evaluation forms the gang too: a lone node times out, a pair finishes with status 0', async () => {
    const noCheckpoint = path.join(tmp, 'no-checkpoint'); // Megatron warns and goes on from random weights
    const missing = path.join(tmp, 'eval', 'mmlu', 'missing');
    const args = [
      ...tinyModelArgs(hf, { pp: 2 }),
      '--micro-batch-size',
      '1',
      '--bf16',
      '--load',
      noCheckpoint,
      '--task',
      'mmlu',
      '--task-data-path',
      missing,
      '--no-load-rng',
      '--no-load-optim',
    ];
    const lone = startNode({ rank: 1, nodes: 2, port: await getFreePort(), args, script: 'evaluation.py', env: { MLEMU_RDZV_TIMEOUT_S: '1' } });
    expect((await within(lone.exited, 30_000, 'lone evaluation node')).code).toBe(1);
    expect(lone.stderr()).toContain('torch.distributed.DistNetworkError: The client socket has timed out after 1s');

    const port = await getFreePort();
    const gang = [0, 1].map((rank) => startNode({ rank, nodes: 2, port, args, script: 'evaluation.py' }));
    const exits = await all(gang, 60_000);
    exits.forEach((e, k) => expect(e.code, gang[k].stderr()).toBe(0));
    expect(gang[0].stdout()).toContain(`INFO:__main__:[Errno 2] No such file or directory: '${missing}'`);
  });

  it('rejects a fault spec with two node scopes', () => {
    const r = spawnSync(PYTHON, [path.join(EMULATOR, 'pretrain_gpt.py'), ...trainArgs({ pp: 1, save: path.join(tmp, 'bad'), iters: 1 })], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, MLEMU_FAULTS: 'node1:node2:crash@1' },
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('mlemu: invalid MLEMU_FAULTS');
  });
});
