// Whether dist/ (the compiled CLI, see scripts/build.mjs) holds the current sources. Read by
// bin/linkflow.js at every start, so it only stats files: ~130 of them, a few milliseconds.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const DIST = path.join(ROOT, 'dist');
export const STAMP = path.join(DIST, '.linkflow-build.json');

/** The folders and files tsconfig.build.json compiles. */
function sourceRoots() {
  const config = JSON.parse(fs.readFileSync(path.join(ROOT, 'tsconfig.build.json'), 'utf8'));
  return config.include.map((p) => path.join(ROOT, p));
}

/** The newest modification time (ms) of a compiled source, its assets and the build's configuration. */
export function newestSourceMtime() {
  let newest = 0;
  const visit = (p) => {
    let st;
    try {
      st = fs.statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(p)) if (name !== '__pycache__' && name !== 'node_modules') visit(path.join(p, name));
    } else if (/\.(ts|mjs|json)$/.test(p)) newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of [...sourceRoots(), path.join(ROOT, 'tsconfig.build.json'), path.join(ROOT, 'tsconfig.json'), path.join(ROOT, 'package.json')]) visit(p);
  return newest;
}

/** 'fresh', 'missing' (never built: an installed package without dist, or a checkout before `npm ci`) or 'stale'. */
export function buildState() {
  let stamp;
  try {
    stamp = JSON.parse(fs.readFileSync(STAMP, 'utf8'));
  } catch {
    return 'missing';
  }
  // An installed package carries no sources beside dist/: nothing to be stale against.
  if (!fs.existsSync(path.join(ROOT, 'tsconfig.build.json'))) return 'fresh';
  return newestSourceMtime() > stamp.sourcesMtime ? 'stale' : 'fresh';
}
