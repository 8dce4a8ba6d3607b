/** Reads a benchmark suite file (YAML or JSON) and validates it; every problem comes back with its path. */
import fs from 'node:fs';
import YAML from 'yaml';
import { defaultSuite, parseSuite, type SuiteResult } from '../modellink/benchmark.ts';

/** Parses the text of a suite file; `file` only names it in messages and picks JSON by its extension. */
export function parseSuiteText(text: string, file: string): SuiteResult {
  let raw: unknown;
  if (file.endsWith('.json')) {
    try {
      raw = JSON.parse(text);
    } catch (err) {
      return { ok: false, problems: [{ path: file, message: `not valid JSON: ${(err as Error).message}` }] };
    }
  } else {
    const doc = YAML.parseDocument(text, { prettyErrors: true });
    if (doc.errors.length > 0) {
      return { ok: false, problems: doc.errors.map((err) => ({ path: `${file}:${err.linePos?.[0]?.line ?? '?'}`, message: err.message.split('\n')[0] })) };
    }
    raw = doc.toJS();
  }
  return parseSuite(raw);
}

/** The suite of a file, or the default suite (every table row) without one. */
export function loadSuiteFile(file?: string): SuiteResult {
  if (file === undefined) return { ok: true, suite: defaultSuite(), warnings: [] };
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    return { ok: false, problems: [{ path: file, message: `cannot read the suite: ${(err as Error).message}` }] };
  }
  return parseSuiteText(text, file);
}
