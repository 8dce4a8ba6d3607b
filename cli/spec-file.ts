/** Reads a pipeline spec file (YAML or JSON) and plans it; every problem comes back with its path. */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { planPipeline, type PlanResult } from '../modellink/plan.ts';

export function loadSpecFile(file: string, options: { workspace?: string } = {}): PlanResult {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    return { ok: false, problems: [{ path: file, message: `cannot read the spec: ${(e as Error).message}` }] };
  }
  let raw: unknown;
  if (file.endsWith('.json')) {
    try {
      raw = JSON.parse(text);
    } catch (e) {
      return { ok: false, problems: [{ path: file, message: `not valid JSON: ${(e as Error).message}` }] };
    }
  } else {
    const doc = YAML.parseDocument(text, { prettyErrors: true });
    if (doc.errors.length > 0) {
      return { ok: false, problems: doc.errors.map((e) => ({ path: `${file}:${e.linePos?.[0]?.line ?? '?'}`, message: e.message.split('\n')[0] })) };
    }
    raw = doc.toJS();
  }
  return planPipeline(raw, { baseDir: path.dirname(path.resolve(file)), workspace: options.workspace });
}
