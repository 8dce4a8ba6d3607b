/** Reads a pipeline spec file (YAML or JSON) and plans it; every problem comes back with its path. */
import fs from 'node:fs';
import path from 'node:path';
import { planPipeline, type PlanResult } from '../plan/plan.ts';
import { parseStructuredText } from '../spec/structured-text.ts';

/** `cluster`: replaces the spec's cluster section (the demo on Kubernetes). */
export function loadSpecFile(
  file: string,
  options: { workspace?: string; cluster?: (raw: Record<string, unknown>) => Record<string, unknown> } = {},
): PlanResult {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    return { ok: false, problems: [{ path: file, message: `cannot read the spec: ${(e as Error).message}` }] };
  }
  const parsed = parseStructuredText(text, file);
  if (!parsed.ok) return parsed;
  const raw =
    options.cluster && typeof parsed.raw === 'object' && parsed.raw !== null
      ? { ...parsed.raw, cluster: options.cluster(parsed.raw as Record<string, unknown>) }
      : parsed.raw;
  return planPipeline(raw, { baseDir: path.dirname(path.resolve(file)), workspace: options.workspace });
}
