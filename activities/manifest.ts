/**
 * Stage manifests: after a stage succeeds, a manifest next to its output records what produced
 * it. A rerun skips a stage whose manifest still matches, which is how a failed pipeline resumes.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { findResumePoint, findWarmResumePoint, readTracker } from './checkpoints.ts';
import type { StageInput, StagePlan } from '../plan/plan.ts';
import type { StageCheck } from '../contracts/run-state.ts';

export interface Manifest {
  pipeline?: string;
  stage: string;
  kind: string;
  fingerprint: string;
  argv: string[];
  env: Record<string, string>;
  inputs: { path: string; fromStage?: string }[];
  output: string;
  finishedAt: string;
  finalIteration?: number;
  /** The framework version that produced the output. */
  framework?: { flavour: string; version: string };
  /** Convert stages: convert_ckpt.py or convert_ckpt_v2.py (one converter per model, never mixed). */
  converter?: string;
}

const MAX_FILES = 10_000;

/** Size and mtime of every file under a path: cheap, and changes whenever the data does. */
function statSignature(p: string): string[] {
  const out: string[] = [];
  const walk = (file: string) => {
    if (out.length >= MAX_FILES) return;
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      out.push(`${file}:missing`);
      return;
    }
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(file).sort()) walk(path.join(file, e));
    } else {
      out.push(`${file}:${st.size}:${Math.trunc(st.mtimeMs)}`);
    }
  };
  walk(p);
  return out;
}

/** The files a dataset prefix stands for (Megatron appends .bin/.idx; instruction data adds _packed_*). */
export function dataFiles(input: StageInput): string[] {
  if (input.kind === 'pretrain-data') return [`${input.path}.bin`, `${input.path}.idx`];
  if (input.kind === 'instruction-data' || input.kind === 'pairwise-data') {
    const dir = path.dirname(input.path);
    const base = path.basename(input.path);
    let entries: string[] = [];
    try {
      entries = fs.readdirSync(dir);
    } catch {
      return [`${input.path}_packed_input_ids_document.bin`];
    }
    const files = entries
      .filter((e) => e.startsWith(`${base}_packed_`))
      .sort()
      .map((e) => path.join(dir, e));
    return files.length > 0 ? files : [`${input.path}_packed_input_ids_document.bin`];
  }
  return [input.path];
}

function stageFingerprint(stage: StagePlan, upstream: Record<string, string>): string {
  const inputs = stage.inputs.map((input) =>
    input.fromStage
      ? { stage: input.fromStage, fingerprint: upstream[input.fromStage] ?? 'unknown' }
      : { path: input.path, files: dataFiles(input).flatMap(statSignature) },
  );
  const canonical = JSON.stringify({ argv: stage.argv, env: stage.env, inputs });
  return createHash('sha256').update(canonical).digest('hex');
}

function readManifest(stage: StagePlan): Manifest | undefined {
  try {
    return JSON.parse(fs.readFileSync(stage.manifestFile, 'utf8')) as Manifest;
  } catch {
    return undefined;
  }
}

/** Whether the stage's output is on disk and whole (not just that a manifest says so). */
export function outputPresent(stage: StagePlan): boolean {
  switch (stage.outputKind) {
    case 'pretrain-data':
    case 'instruction-data':
    case 'pairwise-data':
      return dataFiles({ specPath: '', path: stage.output, kind: stage.outputKind }).every((f) => fs.existsSync(f));
    case 'checkpoint': {
      if (stage.training) {
        // A LoRA stage resumed by warm restarts ends in its newest warm folder, counting from where that started.
        const { point, offset } =
          stage.training.lora && stage.training.loraResume === 'warm'
            ? findWarmResumePoint(stage.training.saveDir, stage.training)
            : { point: findResumePoint(stage.training.saveDir, stage.training), offset: 0 };
        return point.kind === 'tracker' && typeof point.iteration === 'number' && offset + point.iteration === stage.training.trainIters;
      }
      return readTracker(stage.output) !== undefined;
    }
    case 'hf-model':
      return fs.existsSync(path.join(stage.output, 'config.json'));
    case 'results':
      return fs.existsSync(stage.output);
  }
}

export function checkStageUpToDate(stage: StagePlan, upstream: Record<string, string>): StageCheck {
  const fingerprint = stageFingerprint(stage, upstream);
  const manifest = readManifest(stage);
  if (!manifest) return { upToDate: false, fingerprint, reason: 'no manifest: the stage has not completed before' };
  if (manifest.fingerprint !== fingerprint)
    return { upToDate: false, fingerprint, reason: `inputs or command changed since it completed at ${manifest.finishedAt}` };
  if (!outputPresent(stage)) return { upToDate: false, fingerprint, reason: `its output ${stage.output} is missing or incomplete` };
  return { upToDate: true, fingerprint, reason: `up to date: completed at ${manifest.finishedAt} with the same inputs and command` };
}

export function writeManifestFile(stage: StagePlan, manifest: Manifest): void {
  fs.mkdirSync(path.dirname(stage.manifestFile), { recursive: true });
  const tmp = `${stage.manifestFile}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(manifest, null, 2) + '\n');
  fs.renameSync(tmp, stage.manifestFile);
}
