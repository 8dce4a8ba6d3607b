#!/usr/bin/env node
// The `linkflow` command. It runs the compiled JavaScript in dist/ (built by `npm ci` through the
// `prepare` script, or `npm run build`), which starts in a fraction of the time tsx needs to compile
// the sources. In a development checkout whose dist/ is missing or older than the sources it runs the
// TypeScript through tsx instead, so an edit takes effect without a build. LINKFLOW_TSX=1 forces tsx.
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildState, DIST } from './build-state.js';

const state = process.env.LINKFLOW_TSX === '1' ? 'forced' : buildState();
let main;
if (state === 'fresh') {
  ({ main } = await import(pathToFileURL(path.join(DIST, 'cli', 'main.js')).href));
} else {
  if (state === 'stale' && process.stderr.isTTY)
    console.error('linkflow: dist/ is older than the sources; running them through tsx (`npm run build` to start faster)');
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../cli/main.ts'));
}
await main(process.argv);
// Clients and workers keep handles open; the command is done when main returns. Exit once
// stdout and stderr have drained, so piped output (presets --json is large) is never cut off.
const code = process.exitCode ?? 0;
let pending = 2;
const done = () => {
  if (--pending === 0) process.exit(code);
};
process.stdout.write('', done);
process.stderr.write('', done);
