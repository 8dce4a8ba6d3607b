/**
 * `validate` and `run` before anything starts: the spec's own checks (spec/, plan/) and the first
 * hour's mistakes that need this machine's files (plan/preflight.ts): shell variables left by import,
 * references that name neither a stage nor a path, HF weights of another model. Paths are checked here;
 * `validate --on-node` checks them where the stage runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { defaultVersion } from '../frameworks/index.ts';
import { presetFor } from '../frameworks/presets.ts';
import { planPipeline } from '../plan/plan.ts';
import { danglingReferences, hfConfigMismatches, stagesWithoutExitHandler, unfilledVariables } from '../plan/preflight.ts';
import type { PipelinePlan } from '../plan/types.ts';
import type { PipelineSpec, SpecProblem } from '../spec/spec.ts';
import { parseStructuredText } from '../spec/structured-text.ts';

export type Preflight =
  { ok: true; plan: PipelinePlan; spec: PipelineSpec; warnings: SpecProblem[] } | { ok: false; problems: SpecProblem[]; warnings: SpecProblem[] };

/** The value at a problem path such as "stages[3].lora.load" of the raw spec. */
export function valueAt(raw: unknown, specPath: string): unknown {
  let at: unknown = raw;
  for (const part of specPath.match(/[^.[\]]+/g) ?? []) {
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<string, unknown>)[part];
  }
  return at;
}

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Convert stages reading a HuggingFace directory outside the pipeline whose config.json disagrees with the model. */
function hfMismatches(plan: PipelinePlan, spec: PipelineSpec): SpecProblem[] {
  const { flavour, version } = spec.modellink;
  const arch =
    spec.model.architecture ??
    (spec.model.preset ? presetFor(spec.model.preset, { flavour, version: version ?? defaultVersion(flavour) })?.architecture : undefined);
  if (!arch) return [];
  const model = spec.model.preset ?? 'model.architecture';
  return plan.stages.flatMap((stage) => {
    const input = stage.kind === 'convert' ? stage.inputs.find((i) => i.specPath.endsWith('.from') && !i.fromStage && i.kind === 'dir') : undefined;
    const configFile = input && path.join(input.path, 'config.json');
    const config = configFile ? readJson(configFile) : undefined;
    return config ? hfConfigMismatches(input!.specPath, configFile!, config, arch, model) : [];
  });
}

export function preflightSpecFile(file: string, options: { workspace?: string } = {}): Preflight {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    return { ok: false, problems: [{ path: file, message: `cannot read the spec: ${(e as Error).message}` }], warnings: [] };
  }
  const parsed = parseStructuredText(text, file);
  if (!parsed.ok) return { ...parsed, warnings: [] };
  const variables = unfilledVariables(parsed.raw);
  const planned = planPipeline(parsed.raw, { baseDir: path.dirname(path.resolve(file)), workspace: options.workspace });
  if (!planned.ok) {
    // A variable explains the problems found at its path (a path that does not exist, a number that is not one).
    const explained = new Set(variables.map((v) => v.path));
    return { ok: false, problems: [...variables, ...planned.problems.filter((p) => !explained.has(p.path))], warnings: [] };
  }
  const variablePaths = new Set(variables.map((v) => v.path));
  const dangling = danglingReferences(planned.plan, (p) => valueAt(parsed.raw, p), fs.existsSync);
  const problems = [...variables, ...dangling.errors.filter((p) => !variablePaths.has(p.path)), ...hfMismatches(planned.plan, planned.spec)];
  const warnings = [...planned.warnings, ...dangling.warnings.filter((p) => !variablePaths.has(p.path)), ...stagesWithoutExitHandler(planned.plan)];
  return problems.length ? { ok: false, problems, warnings } : { ok: true, plan: planned.plan, spec: planned.spec, warnings };
}
