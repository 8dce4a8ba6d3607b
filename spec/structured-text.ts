/** The text of a spec or suite file as data: JSON by the file's extension, YAML otherwise; errors name the file (and line). */
import YAML from 'yaml';
import type { SpecProblem } from './spec.ts';

export function parseStructuredText(text: string, file: string): { ok: true; raw: unknown } | { ok: false; problems: SpecProblem[] } {
  if (file.endsWith('.json')) {
    try {
      return { ok: true, raw: JSON.parse(text) };
    } catch (e) {
      return { ok: false, problems: [{ path: file, message: `not valid JSON: ${(e as Error).message}` }] };
    }
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    return { ok: false, problems: doc.errors.map((e) => ({ path: `${file}:${e.linePos?.[0]?.line ?? '?'}`, message: e.message.split('\n')[0] })) };
  }
  return { ok: true, raw: doc.toJS() };
}
