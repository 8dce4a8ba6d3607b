/** `linkflow import`: a ModelLink script in, a spec out; rendering that spec gives the script's command back. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadSpecFile } from '../client/spec-file.ts';
import type { Arg } from '../frameworks/modellink/args.ts';
import { MANAGED_OUTPUT_FLAGS, normalizeValue } from '../import/import-script.ts';
import { runCli } from '../testkit/cli.ts';
import { ROOT, tempDir } from '../testkit/specs.ts';

interface Example {
  script: string;
  launcher: string;
  distributed: Record<string, number | string | null>;
  env: Record<string, string>;
  sources: string[];
  entrypoint: string;
  args: Arg[];
  placeholders: Record<string, { script_value: string }>;
}
const examples = JSON.parse(fs.readFileSync(path.join(ROOT, 'reference', 'modellink', 'examples.json'), 'utf8')) as { scripts: Example[] };

const quote = (v: string) => (/^[A-Za-z0-9_@%+=:,./${}-]+$/.test(v) ? v : `'${v.replace(/'/g, `'\\''`)}'`);

/** A script shaped like ModelLink's, written from its examples.json entry. */
function scriptText(e: Example): string {
  const lines = ['#!/bin/bash', ...Object.entries(e.env).map(([k, v]) => `export ${k}=${v}`), ...e.sources.map((s) => `source ${s}`)];
  for (const [name, p] of Object.entries(e.placeholders)) lines.push(`${name}=${p.script_value}`);
  const dist = Object.entries(e.distributed)
    .filter(([k, v]) => k !== 'world_size' && v !== null)
    .map(([k, v]) => `--${k} ${v}`)
    .join(' ');
  const launch = e.launcher === 'python' ? 'python' : `${e.launcher} ${dist}`;
  const args = e.args.map(([f, v]) => `    ${f}${v === null ? '' : ' ' + (Array.isArray(v) ? v.map(quote).join(' ') : quote(v))}`);
  return [...lines, `${launch} ${e.entrypoint} \\`, args.join(' \\\n'), ''].join('\n');
}

const multiset = (args: Arg[], root: string) => args.map(([f, v]) => `${f} ${MANAGED_OUTPUT_FLAGS.has(f) ? '<output>' : normalizeValue(v, root)}`).sort();

describe('linkflow import', () => {
  for (const name of [
    'examples/mcore/llama2/pretrain_llama2_7b_ptd.sh',
    'examples/llama2/tune_llama2_7b_lora_ptd.sh',
    'examples/mcore/llama2/generate_llama2_7b_ptd.sh',
    'examples/mcore/llama2/data_convert_llama2_instruction.sh',
    'examples/llama2/ckpt_convert_llama2_hf2legacy.sh',
    'examples/mcore/qwen15/evaluate_qwen15_7b_ptd.sh',
  ]) {
    it(`round trip: ${name}`, async () => {
      const e = examples.scripts.find((s) => s.script === name);
      if (!e) throw new Error(`${name} is not in examples.json`);
      const dir = tempDir('import');
      const root = path.join(dir, 'ModelLink');
      const script = path.join(dir, path.basename(name));
      fs.writeFileSync(script, scriptText(e));
      const out = path.join(dir, 'spec.yaml');
      const r = await runCli(['import', script, '--root', root, '-o', out]);
      expect(r.code, r.stderr).toBe(0);
      const planned = loadSpecFile(out);
      if (!planned.ok) throw new Error(planned.problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
      const stage = planned.plan.stages[0];
      expect(path.basename(stage.entrypoint)).toBe(e.entrypoint);
      expect(multiset(stage.args, root)).toEqual(multiset(e.args, root));
      expect(stage.env).toEqual(e.env);
      expect(stage.cwd).toBe(root);
      // A second import to the same file is refused: nothing is overwritten.
      const again = await runCli(['import', script, '--root', root, '-o', out]);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('already exists');
    });
  }

  it('explains a script it cannot import', async () => {
    const dir = tempDir('import');
    const script = path.join(dir, 'train.sh');
    fs.writeFileSync(script, '#!/bin/bash\ndeepspeed train.py --foo 1\n');
    const r = await runCli(['import', script]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot import/);
  });
});
