#!/usr/bin/env node
// Runs a command so that it cannot outlive the worker that started it.
//
//   node supervisor.mjs <graceMs> -- <command> [args...]
//
// The worker holds the write end of a pipe on our fd 3. If the worker dies (even by SIGKILL),
// the pipe closes and we stop the whole process group: SIGTERM, then SIGKILL after graceMs.
// Otherwise we wait for the command and exit as it did (same code, or the same signal), so the
// worker classifies the command's own exit. Plain JavaScript: it starts in milliseconds.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';

const [graceArg, dashes, command, ...args] = process.argv.slice(2);
if (dashes !== '--' || !command) {
  process.stderr.write('usage: supervisor.mjs <graceMs> -- <command> [args...]\n');
  process.exit(2);
}
const graceMs = Number(graceArg) || 10_000;

// Our stderr is a pipe to the worker; once the worker is gone, writing to it must not kill us
// before the group is stopped.
process.stdout.on('error', () => {});
process.stderr.on('error', () => {});

// The group's SIGTERM (from the worker's kill, or our own below) is for the command: we stay to report its exit.
process.on('SIGTERM', () => {});
process.on('SIGINT', () => {});

const child = spawn(command, args, { stdio: 'inherit' });
child.on('error', (err) => {
  process.stderr.write(`linkflow supervisor: could not start ${command}: ${err.message}\n`);
  process.exit(127);
});
let stopping = false;
child.on('exit', (code, signal) => {
  if (stopping) {
    // The worker is gone: whatever the launcher left in the group goes now (and this process with it).
    try {
      process.kill(-process.pid, 'SIGKILL');
    } catch {}
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

let lifeline;
try {
  fs.fstatSync(3);
  lifeline = new net.Socket({ fd: 3, readable: true, writable: false });
} catch {
  lifeline = undefined; // started by hand, without a worker: nothing to watch
}
if (lifeline) {
  lifeline.unref();
  lifeline.on('data', () => {});
  lifeline.on('error', () => stopGroup('the worker pipe failed'));
  lifeline.on('close', () => stopGroup('the worker that started it is gone'));
}

function stopGroup(why) {
  if (stopping || child.exitCode !== null || child.signalCode !== null) return;
  stopping = true;
  process.stderr.write(`linkflow supervisor: ${why}; stopping the process group\n`);
  try {
    process.kill(-process.pid, 'SIGTERM');
  } catch {}
  // Kept referenced: this process stays until the group is surely gone.
  setTimeout(() => {
    try {
      process.kill(-process.pid, 'SIGKILL');
    } catch {}
  }, graceMs);
}
