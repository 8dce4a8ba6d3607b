// `npm run build` (and `prepare`, so `npm ci` builds): compiles the runtime folders to dist/ with tsc
// (tsconfig.build.json: imports' .ts rewritten to .js), copies the .mjs helpers that run as their own
// processes (executors/nodes/io/supervisor.mjs, …) beside their compiled neighbours, and stamps the build with the
// newest source time it compiled, which bin/linkflow.js compares at start (bin/build-state.js).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { DIST, ROOT, STAMP, newestSourceMtime } from '../bin/build-state.js';

const require = createRequire(import.meta.url);
let tsc;
try {
  tsc = require.resolve('typescript/bin/tsc');
} catch {
  console.error('linkflow build: typescript is not installed (npm ci without dev dependencies?); bin/linkflow.js will run the sources through tsx');
  process.exit(0);
}
const sourcesMtime = newestSourceMtime();
fs.rmSync(STAMP, { force: true });
const r = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
const config = JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8'));
const copy = (rel) => {
  const from = path.join(ROOT, rel);
  if (fs.statSync(from).isDirectory()) for (const name of fs.readdirSync(from)) copy(path.join(rel, name));
  else if (rel.endsWith('.mjs')) {
    fs.mkdirSync(path.dirname(path.join(DIST, rel)), { recursive: true });
    fs.copyFileSync(from, path.join(DIST, rel));
  }
};
for (const rel of config.include) copy(rel);
fs.writeFileSync(STAMP, JSON.stringify({ sourcesMtime, builtAt: new Date().toISOString() }) + '\n');
