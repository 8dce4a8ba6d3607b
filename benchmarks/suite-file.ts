/** Reads a benchmark suite file (YAML or JSON) and validates it; every problem comes back with its path. */
import fs from 'node:fs';
import { parseStructuredText } from '../modellink/structured-text.ts';
import { defaultSuite, parseSuite, type SuiteResult } from '../modellink/benchmark.ts';

/** Parses the text of a suite file; `file` only names it in messages and picks JSON by its extension. */
export function parseSuiteText(text: string, file: string): SuiteResult {
  const parsed = parseStructuredText(text, file);
  return parsed.ok ? parseSuite(parsed.raw) : parsed;
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
