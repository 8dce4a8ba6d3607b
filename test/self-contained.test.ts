/**
 * A clone has nothing beside it: no source, script or test may reach outside the repository for
 * reference data (issue 9 §1). The reference lives in reference/ with its provenance.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../testkit/specs.ts';

const tracked = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean);
const code = tracked.filter((f) => /\.(ts|mjs|js|py)$/.test(f) || (f.startsWith('emulator/') && !f.includes('.')));

describe('the repository is self-contained', () => {
  it('no code names a path outside the repository for reference data', () => {
    const outside = /\.\.\/shared|'\.\.', 'shared'|\/work\/shared|modellink-reference/;
    const offenders = code.filter((f) => f !== 'test/self-contained.test.ts' && outside.test(fs.readFileSync(path.join(ROOT, f), 'utf8')));
    expect(offenders).toEqual([]);
  });

  it('every reference file is present and its provenance is written down', () => {
    const readme = fs.readFileSync(path.join(ROOT, 'reference', 'README.md'), 'utf8');
    for (const file of ['examples.json', 'flags.json', 'formats.md', 'real-sources.md', 'seed-features.json', 'seed-performance.json']) {
      expect(fs.existsSync(path.join(ROOT, 'reference', 'modellink', file)), file).toBe(true);
      expect(readme).toContain(`modellink/${file}`);
    }
    expect(readme).toContain('d4feda79a79548753c4609e3fd9f2704649a0dd3');
  });

  it('the generators reproduce the committed derived files from reference/', () => {
    const out = execFileSync('python3', ['scripts/gen_presets.py', '--check'], { cwd: ROOT, encoding: 'utf8' });
    expect(out).toContain('up to date');
    expect(execFileSync('python3', ['scripts/gen_msl_presets.py', '--check'], { cwd: ROOT, encoding: 'utf8' })).toContain('up to date');
  });
});
