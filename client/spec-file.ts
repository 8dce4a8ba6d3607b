/** Reads a pipeline spec file (YAML or JSON) and plans it; every problem comes back with its path. */
import fs from 'node:fs';
import path from 'node:path';
import { planPipeline, type PlanResult } from '../plan/plan.ts';
import { parseStructuredText } from '../spec/structured-text.ts';

export function loadSpecFile(file: string, options: { workspace?: string } = {}): PlanResult {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    return { ok: false, problems: [{ path: file, message: `cannot read the spec: ${(e as Error).message}` }] };
  }
  const parsed = parseStructuredText(text, file);
  if (!parsed.ok) return parsed;
  return planPipeline(parsed.raw, { baseDir: path.dirname(path.resolve(file)), workspace: options.workspace });
}
