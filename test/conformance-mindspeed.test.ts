/**
 * Proof against MindSpeed-LLM itself: every example script of each supported version (reference/mindspeed-llm/
 * examples/<version>.json, parsed from the release branch) is imported, with the version read from the script, and
 * either renders back as that version — the script's entrypoint, launcher settings, environment and arguments (order,
 * placeholders, workspace-managed outputs and repeats of a flag aside) — or is a slip recorded in
 * reference/mindspeed-llm/script-slips.json (wrong as written, with the source that shows it) whose import does what
 * the record says: a `corrected` render differs as recorded, a `refused` import or validation shows the recorded error,
 * a `kept` one renders as written (and fails as the script does), with the import's note where there is one.
 * Scripts outside linkflow's stages (other --stage values, the examples' own converters, pretrain_mamba.py) must be
 * refused with an error naming what linkflow runs. Prints, per version: rendered back / recorded slips / not linkflow stages.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FRAMEWORK_VERSIONS, getFramework, type Entrypoint } from '../frameworks/index.ts';
import { frameworkOfScript } from '../import/framework-of-script.ts';
import { importScript } from '../import/import-script.ts';
import { difference, parsedOf, type Example } from '../testkit/conformance.ts';
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

interface Slip {
  slip: string;
  source: string;
  /** corrected: the render differs as `shown`; refused: the import or validate error shows it; kept: rendered as written (notes show it). */
  linkflow: 'corrected' | 'refused' | 'kept';
  shown: string;
}
const SLIPS = JSON.parse(fs.readFileSync(path.join(ROOT, 'reference', 'mindspeed-llm', 'script-slips.json'), 'utf8')) as {
  versions: Record<string, Record<string, Slip>>;
};

/**
 * Misses of linkflow's own import still being fixed, per version: each must still miss (so the list shrinks as the
 * fixes land). Empty today: every considered script renders back or is a recorded slip.
 */
const PENDING: Record<string, string[]> = {};

type Script = Example & { issues?: string[] };

function examplesOf(version: string): Script[] {
  const file = path.join(ROOT, 'reference', 'mindspeed-llm', 'examples', `${version}.json`);
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { scripts: Script[] }).scripts;
}

/** A linkflow stage: one of its kinds through one of its entry points. */
const isStage = (e: Script) => KINDS.includes(e.kind) && ENTRYPOINTS.includes(path.basename(e.entrypoint));

describe('MindSpeed-LLM example scripts: each renders back, is a recorded slip, or is refused as not a linkflow stage', () => {
  it.each(FRAMEWORK_VERSIONS['mindspeed-llm'])('%s', (version) => {
    const framework = getFramework({ flavour: 'mindspeed-llm', version })!;
    const all = examplesOf(version);
    const slips = SLIPS.versions[version] ?? {};
    const pending = PENDING[version] ?? [];
    for (const script of [...Object.keys(slips), ...pending])
      expect(
        all.map((e) => e.script),
        `${version} lists ${script}`,
      ).toContain(script);
    const results = all.map((e) => ({ e, ...difference(e, MSL_ROOT, { flavour: 'mindspeed-llm', version }) }));
    const of = (want: (r: (typeof results)[number]) => boolean) => results.filter(want);
    const recorded = of((r) => r.e.script in slips);
    const notStages = of((r) => !(r.e.script in slips) && !isStage(r.e));
    const considered = of((r) => !(r.e.script in slips) && isStage(r.e));
    const rendered = considered.filter((r) => !r.why);
    const waiting = considered.filter((r) => pending.includes(r.e.script));
    const kinds = KINDS.map((kind) => {
      const k = considered.filter((r) => r.e.kind === kind);
      return `${kind.padEnd(17)} ${k.filter((r) => !r.why).length}/${k.length}`;
    });
    console.log(
      `MindSpeed-LLM ${version} (${all.length} scripts): ${rendered.length} rendered back / ${recorded.length} recorded slips / ` +
        `${notStages.length} not linkflow stages${waiting.length ? ` / ${waiting.length} pending in conf-import` : ''}\n  ${kinds.join('\n  ')}`,
    );

    // Every stage script renders back, unless its miss is pending elsewhere (and then it must still miss).
    for (const r of considered) {
      if (pending.includes(r.e.script)) expect(r.why, `${r.e.script} renders back now: take it out of PENDING`).not.toBe('');
      else expect(r.why, r.e.script).toBe('');
    }
    // A recorded slip does what the record says: corrected or refused ones do not render back; kept ones render as
    // written, with the import's note where the record names one.
    for (const r of recorded) {
      const slip = slips[r.e.script];
      expect(slip.source, r.e.script).toMatch(/#L\d+/);
      if (slip.linkflow === 'kept') {
        expect(r.why, r.e.script).toBe('');
        const { notes } = importScript(parsedOf(r.e), {
          name: 'imported',
          root: MSL_ROOT,
          scriptPath: r.e.script,
          framework: { flavour: 'mindspeed-llm', version },
        });
        if (slip.shown) expect(notes.join('\n'), r.e.script).toContain(slip.shown);
        continue;
      }
      const failed = r.why.startsWith('import: ') || r.why.startsWith('spec: ');
      expect(r.why, `${r.e.script} is recorded as a slip but renders back: take it out of script-slips.json`).not.toBe('');
      expect(failed ? 'refused' : 'corrected', `${r.e.script}: ${r.why}`).toBe(slip.linkflow);
      expect(r.why, r.e.script).toContain(slip.shown);
    }
    // Outside linkflow's stages: refused at import, naming what linkflow runs.
    for (const r of notStages) expect(r.why, r.e.script).toMatch(/^import: cannot import .+: linkflow runs /);

    // The version read from each script is one whose parser takes every flag the script passes (scripts broken as written aside).
    for (const { e } of considered.filter((r) => !r.e.issues?.length)) {
      const seen = getFramework(frameworkOfScript(e.entrypoint, e.args))!;
      const unknown = e.args.filter(([f]) => !seen.isKnownFlag(path.basename(e.entrypoint) as Entrypoint, f)).map(([f]) => f);
      expect(unknown, `${e.script} read as ${seen.name}`).toEqual([]);
      if (['posttrain_gpt.py', 'convert_ckpt_v2.py'].includes(path.basename(e.entrypoint))) expect(seen.flavour, e.script).toBe('mindspeed-llm');
    }
    expect(framework.version).toBe(version);
  });
});
