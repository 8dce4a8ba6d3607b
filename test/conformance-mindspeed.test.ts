/**
 * Proof against MindSpeed-LLM itself: every pretrain, tune (full, LoRA), DPO, convert (v1 and v2),
 * preprocess, evaluate, generate and chat script of each supported version (reference/mindspeed-llm/
 * examples/<version>.json, parsed from the release branch) is imported, with the version read from the
 * script, and rendered back as that version; the render must give the script's entrypoint, launcher
 * settings, environment and arguments (order, placeholders, workspace-managed outputs and repeats of a flag aside).
 * Prints the match rate per version and kind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FRAMEWORK_VERSIONS, getFramework, type Entrypoint } from '../frameworks/index.ts';
import { frameworkOfScript } from '../import/framework-of-script.ts';
import { difference, type Example } from '../testkit/conformance.ts';
import { ROOT } from '../testkit/specs.ts';

const KINDS = [
  'pretrain',
  'tune_full',
  'tune_lora',
  'dpo',
  'convert',
  'data_pretrain',
  'data_instruction',
  'data_pairwise',
  'data_other',
  'evaluate',
  'generate',
  'chat',
];
const MSL_ROOT = '/opt/MindSpeed-LLM';
/** linkflow's entry points: the examples' own one-off converters (convert_ckpt_deepseek3.py …) are not. */
const ENTRYPOINTS = ['pretrain_gpt.py', 'posttrain_gpt.py', 'convert_ckpt.py', 'convert_ckpt_v2.py', 'preprocess_data.py', 'evaluation.py', 'inference.py'];

function examplesOf(version: string): Example[] {
  const file = path.join(ROOT, 'reference', 'mindspeed-llm', 'examples', `${version}.json`);
  const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { scripts: (Example & { issues?: string[] })[] };
  return doc.scripts.filter((e) => KINDS.includes(e.kind) && ENTRYPOINTS.includes(path.basename(e.entrypoint)));
}

/** Matches measured when this test was written, per version; they may only grow. */
const FLOOR: Record<string, number> = { '1.0.0': 501, '2.1.0': 587, '2.3.0': 399, '26.0.0': 276 };

describe('MindSpeed-LLM example scripts: import and render back', () => {
  it.each(FRAMEWORK_VERSIONS['mindspeed-llm'])('%s', (version) => {
    const framework = getFramework({ flavour: 'mindspeed-llm', version })!;
    const scripts = examplesOf(version);
    const results = scripts.map((e) => ({ e, ...difference(e, MSL_ROOT, { flavour: 'mindspeed-llm', version }) }));
    const lines = KINDS.map((kind) => {
      const of = results.filter((r) => r.e.kind === kind);
      return `${kind.padEnd(17)} ${of.filter((r) => !r.why).length}/${of.length} match`;
    });
    const ok = results.filter((r) => !r.why);
    const wrong = results.filter((r) => r.why && !r.e.issues?.length);
    console.log(
      `MindSpeed-LLM ${version} (${scripts.length} scripts):\n  ${lines.join('\n  ')}\n  all: ${ok.length}/${scripts.length} match\n  ` +
        wrong
          .slice(0, 15)
          .map((r) => `${r.e.script}: ${r.why}`)
          .join('\n  '),
    );
    expect(ok.length).toBeGreaterThanOrEqual(FLOOR[version]);
    // The version read from each script is one whose parser takes every flag the script passes (scripts broken as written aside).
    for (const e of scripts.filter((x) => !x.issues?.length)) {
      const seen = getFramework(frameworkOfScript(e.entrypoint, e.args))!;
      const unknown = e.args.filter(([f]) => !seen.isKnownFlag(path.basename(e.entrypoint) as Entrypoint, f)).map(([f]) => f);
      expect(unknown, `${e.script} read as ${seen.name}`).toEqual([]);
      if (['posttrain_gpt.py', 'convert_ckpt_v2.py'].includes(path.basename(e.entrypoint))) expect(seen.flavour, e.script).toBe('mindspeed-llm');
    }
    expect(framework.version).toBe(version);
  });
});
