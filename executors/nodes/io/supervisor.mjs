#!/usr/bin/env node
// Runs a command so that it cannot outlive the worker that started it, and stops it the way its
// launcher needs.
//
//   node supervisor.mjs <graceMs> [--stop-workers] -- <command> [args...]
//
// The worker holds the other end of a socket on our fd 3. It writes lines there:
//   grace <ms>   the grace to use if the worker goes away (it follows the trainer's measured saves)
//   stop <ms>    stop the command now: SIGTERM, then SIGKILL to the whole group after <ms>
// If the worker dies (even by SIGKILL), the socket closes and we stop the command the same way with
// the last grace. Otherwise we wait for the command and exit as it did (same code, or the same
// signal), so the worker classifies the command's own exit. Plain JavaScript: it starts in milliseconds.
//
// Whom SIGTERM goes to: without --stop-workers, the whole process group. With it (training stages),
// the launcher's child processes when it has any, else the launcher itself. torchrun's elastic agent,
// when it receives SIGTERM itself, forwards it and SIGKILLs its workers 30 s later whatever they do
// (torch/distributed/elastic/agent/server/api.py, _invoke_run → _shutdown(death_sig) →
// LocalElasticAgent._shutdown → self._pcontext.close(death_sig) with close's timeout=30 in
// multiprocessing/api.py), which would cut a checkpoint save longer than that. Its workers, stopped
// directly, save (--exit-signal-handler) and exit; the agent then ends on its own as they did.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { childrenOf } from '../../../node/process-tree.mjs';

const argv = process.argv.slice(2);
const dashes = argv.indexOf('--');
const options = dashes >= 0 ? argv.slice(0, dashes) : [];
const [command, ...args] = dashes >= 0 ? argv.slice(dashes + 1) : [];
if (dashes < 1 || !command) {
  process.stderr.write('usage: supervisor.mjs <graceMs> [--stop-workers] -- <command> [args...]\n');
  process.exit(2);
}
let graceMs = Number(options[0]) || 10_000;
const stopWorkers = options.includes('--stop-workers');

// Our stderr is a pipe to the worker; once the worker is gone, writing to it must not kill us
// before the group is stopped.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

// The group's SIGTERM (a stop of a non-training command, or an outside kill) is for the command: we stay to report its exit.
process.on('SIGTERM', () => {});
process.on('SIGINT', () => {});

const child = spawn(command, args, { stdio: 'inherit' });
child.on('error', (err) => {
  process.stderr.write(`linkflow supervisor: could not start ${command}: ${err.message}\n`);
  process.exit(127);
});
let workerGone = false;
child.on('exit', (code, signal) => {
  if (workerGone) {
    // The worker is gone: whatever the launcher left in the group goes now (and this process with it).
    killGroup();
    process.exit(1);
  }
  if (signal) {
    process.removeAllListeners('SIGTERM');
    process.removeAllListeners('SIGINT');
    process.kill(process.pid, signal);
  } else {
    process.exit(code ?? 1);
  }
});

function killGroup() {
  try {
    process.kill(-process.pid, 'SIGKILL');
  } catch {}
}

let killAt;
let killTimer;
function stop(ms, why) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const deadline = Date.now() + ms;
  if (killAt !== undefined && killAt <= deadline) return; // a stop under way ends no later than this one asks
  const first = killAt === undefined;
  killAt = deadline;
  clearTimeout(killTimer);
  // Kept referenced: this process stays until the group is surely gone.
  killTimer = setTimeout(killGroup, ms);
  if (!first) return;
  const workers = stopWorkers && child.pid ? childrenOf(child.pid) : [];
  const targets = stopWorkers ? (workers.length > 0 ? workers : [child.pid]) : [-process.pid];
  process.stderr.write(
    `linkflow supervisor: ${why}; SIGTERM to ${stopWorkers ? (workers.length > 0 ? `the launcher's ${workers.length} worker process${workers.length === 1 ? '' : 'es'} (${workers.join(', ')})` : `the launcher (${child.pid})`) : 'the process group'}, SIGKILL to the group after ${(ms / 1000).toFixed(1)} s\n`,
  );
  for (const pid of targets) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {}
  }
}

let lifeline;
try {
  fs.fstatSync(3);
  lifeline = new net.Socket({ fd: 3, readable: true, writable: false });
} catch {
  lifeline = undefined; // started by hand, without a worker: nothing to watch
}
if (lifeline) {
  lifeline.unref();
  let pending = '';
  lifeline.on('data', (data) => {
    pending += data.toString();
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const [verb, value] = line.trim().split(' ');
      const ms = Number(value);
      if (!Number.isFinite(ms) || ms < 0) continue;
      if (verb === 'grace') graceMs = ms;
      if (verb === 'stop') stop(ms, 'asked to stop');
    }
  });
  const lost = (why) => {
    if (workerGone || child.exitCode !== null || child.signalCode !== null) return;
    workerGone = true;
    stop(graceMs, why);
  };
  lifeline.on('error', () => lost('the worker pipe failed'));
  lifeline.on('close', () => lost('the worker that started it is gone'));
}
