#!/usr/bin/env node
// One task of a linkflow Slurm job: srun runs this on every node of the allocation (one task per
// node), from the constant batch script in executors/slurm/plan.ts.
//
//   node slurm-task.mjs <task.json>
//
// task.json (SlurmTaskFile in executors/slurm/plan.ts) holds the stage's argv, working directory,
// environment and setup script; nothing of it passes through a shell. On its node this launcher
//   - sources the setup script (Ascend's set_env.sh belongs to the compute node) with the path as an
//     argument of a fixed bash program, as node/setup-env.ts does on node workers;
//   - fills the rendezvous in from the job itself: the node's rank is SLURM_NODEID, the master address
//     is the first node of SLURM_JOB_NODELIST (`scontrol show hostnames`) at the address Slurm reaches
//     it by (its NodeAddr), the port is derived from the job id, the same on every node;
//   - starts the argv and exits as it did (code, or the signal that ended it);
//   - stops it when the worker asks: the worker writes `stop <ms>` into the stop file on shared
//     storage; SIGTERM then goes to torchrun's worker processes (not the elastic agent, whose own
//     shutdown SIGKILLs them 30 s later, see supervisor.mjs), SIGKILL to everything after <ms>.
//     A file rather than scancel's signals: Slurm signals every process of a step at once, the agent
//     included, and that is exactly what would cut a checkpoint save.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import readline from 'node:readline';
import os from 'node:os';
import { childrenOf, treeOf } from '../../../node/process-tree.mjs';

const NODE_RANK = '${SLURM_NODEID}';
const MASTER_ADDR = '${LINKFLOW_MASTER_ADDR}';
const MASTER_PORT = '${LINKFLOW_MASTER_PORT}';
const STOP_POLL_MS = 500;

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: slurm-task.mjs <task.json>\n');
  process.exit(2);
}
const task = JSON.parse(fs.readFileSync(file, 'utf8'));
const env = { ...process.env };
if (task.setupScript) Object.assign(env, sourced(task.setupScript));
for (const [k, v] of Object.entries(task.env ?? {})) {
  if (v === null) delete env[k];
  else env[k] = v;
}

const rank = process.env.SLURM_NODEID ?? '0';
const nodes = process.env.SLURM_JOB_NUM_NODES ?? process.env.SLURM_NNODES ?? '1';
const usesRendezvous = task.argv.includes(MASTER_ADDR) || task.argv.includes(MASTER_PORT);
const master = usesRendezvous ? masterAddress() : undefined;
const port = String(20000 + (Number(process.env.SLURM_JOB_ID ?? 0) % 20000));
const argv = task.argv.map((a) => (a === NODE_RANK ? rank : a === MASTER_ADDR ? master : a === MASTER_PORT ? port : a));
process.stderr.write(
  `linkflow slurm task: node rank ${rank} of ${nodes} on ${process.env.SLURMD_NODENAME ?? os.hostname()}${master ? ` (master ${master}:${port})` : ''}\n`,
);

// Slurm's own signals (scancel, the time limit) reach every process of the step; we stay to report the exit.
process.on('SIGTERM', () => {});
process.on('SIGINT', () => {});
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

// The stage's secrets came in the job's environment; Slurm writes this output to the attempt log, so they
// are masked here, line by line, as node/mask.ts does for node workers (values under 4 characters are not).
const secrets = (task.secretNames ?? []).map((name) => env[name]).filter((v) => typeof v === 'string' && v.length >= 4);
const masked = secrets.length > 0;
const child = spawn(argv[0], argv.slice(1), {
  cwd: task.cwd,
  env,
  stdio: [task.stdin !== undefined ? 'pipe' : 'ignore', masked ? 'pipe' : 'inherit', masked ? 'pipe' : 'inherit'],
});
if (masked) {
  const mask = (line) => secrets.reduce((text, secret) => text.split(secret).join('***'), line);
  for (const [from, to] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ]) {
    readline.createInterface({ input: from, crlfDelay: Infinity }).on('line', (line) => to.write(`${mask(line)}\n`));
  }
}
if (task.stdin !== undefined && child.stdin) {
  child.stdin.on('error', () => {});
  child.stdin.end(task.stdin);
}
child.on('error', (err) => {
  process.stderr.write(`linkflow slurm task: could not start ${argv[0]}: ${err.message}\n`);
  process.exit(127);
});

let stopping = false;
const poll = setInterval(() => {
  if (stopping || !fs.existsSync(task.stopFile)) return;
  const [verb, value] = fs.readFileSync(task.stopFile, 'utf8').trim().split(' ');
  const ms = Number(value);
  if (verb !== 'stop' || !Number.isFinite(ms) || ms < 0) return;
  stopping = true;
  stop(ms);
}, STOP_POLL_MS);

// With masking, the last lines are still in the pipes at 'exit': end once they are written ('close').
child.on(masked ? 'close' : 'exit', (code, signal) => {
  clearInterval(poll);
  // Whatever the launcher left behind goes with it.
  for (const pid of treeOf(process.pid).slice(1)) signalPid(pid, 'SIGKILL');
  if (signal) {
    process.removeAllListeners('SIGTERM');
    process.removeAllListeners('SIGINT');
    process.kill(process.pid, signal);
  } else process.exit(code ?? 1);
});

function stop(ms) {
  const workers = task.stopWorkers ? childrenOf(child.pid) : [];
  const targets = task.stopWorkers ? (workers.length > 0 ? workers : [child.pid]) : treeOf(child.pid);
  process.stderr.write(
    `linkflow slurm task: asked to stop; SIGTERM to ${task.stopWorkers && workers.length > 0 ? `the launcher's ${workers.length} worker process${workers.length === 1 ? '' : 'es'} (${workers.join(', ')})` : 'the launch'}, SIGKILL after ${(ms / 1000).toFixed(1)} s\n`,
  );
  for (const pid of targets) signalPid(pid, 'SIGTERM');
  setTimeout(() => {
    for (const pid of treeOf(child.pid)) signalPid(pid, 'SIGKILL');
  }, ms).unref();
}

function signalPid(pid, signal) {
  try {
    process.kill(pid, signal);
  } catch {
    // gone
  }
}

/** The first node of the allocation, at the address Slurm reaches it by. */
function masterAddress() {
  const list = process.env.SLURM_JOB_NODELIST;
  if (!list) return '127.0.0.1';
  const first = execFileSync('scontrol', ['show', 'hostnames', list], { encoding: 'utf8' }).split('\n')[0].trim();
  try {
    const node = execFileSync('scontrol', ['show', 'node', '-o', first], { encoding: 'utf8' });
    const addr = /\bNodeAddr=(\S+)/.exec(node)?.[1];
    return addr && addr !== '(null)' ? addr : first;
  } catch {
    return first;
  }
}

/** The environment after sourcing the setup script: its path is an argument, never shell text. */
function sourced(script) {
  const result = spawnSync('bash', ['-c', 'set -a; . "$1" >/dev/null 2>&1 || exit 97; env -0', 'linkflow-setup', script], {
    env,
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  if (result.status !== 0) {
    process.stderr.write(`linkflow slurm task: sourcing ${script} failed (exit ${result.status})\n`);
    process.exit(97);
  }
  const out = {};
  for (const entry of result.stdout.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq > 0) out[entry.slice(0, eq)] = entry.slice(eq + 1);
  }
  return out;
}
