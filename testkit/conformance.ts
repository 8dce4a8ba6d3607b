/** Importing an example script and rendering it back, compared with the script (test/conformance*.test.ts). */
import path from 'node:path';
import type { Arg } from '../frameworks/modellink/args.ts';
import { withNewNames } from '../frameworks/dialect.ts';
import { getFramework, type FrameworkChoice } from '../frameworks/index.ts';
import { importScript, lastWins, MANAGED_OUTPUT_FLAGS, normalizeValue, renderStage } from '../import/import-script.ts';
import type { ParsedScript } from '../import/shell-script.ts';

export interface Example {
  script: string;
  kind: string;
  entrypoint: string;
  launcher: string;
  distributed: Record<string, number | string | null>;
  env: Record<string, string>;
  sources: string[];
  args: Arg[];
  placeholders: Record<string, unknown>;
  issues?: string[];
}

export function parsedOf(e: Example): ParsedScript {
  return {
    env: e.env,
    sources: e.sources,
    launcher: e.launcher,
    distributed: e.distributed,
    entrypoint: e.entrypoint,
    args: e.args,
    placeholders: {},
    logFile: null,
    warnings: [],
    argv: [],
    launcherOptions: [],
    otherCommands: [],
    commentedOutFlags: [],
    orphanedArgs: [],
  } as ParsedScript;
}

const multiset = (args: Arg[], root: string) => args.map(([f, v]) => `${f} ${MANAGED_OUTPUT_FLAGS.has(f) ? '<output>' : normalizeValue(v, root)}`).sort();

/** `from` less one occurrence of each entry of `less`. */
function without(from: string[], less: string[]): string[] {
  const left = [...less];
  return from.filter((a) => {
    const at = left.indexOf(a);
    if (at < 0) return true;
    left.splice(at, 1);
    return false;
  });
}

/** Why a render differs from its script ('' when it does not). */
export function difference(e: Example, root: string, framework?: FrameworkChoice): { why: string; overrides: number } {
  let imported;
  try {
    imported = importScript(parsedOf(e), { name: 'imported', root, scriptPath: e.script, framework });
  } catch (err) {
    return { why: `import: ${(err as Error).message}`, overrides: -1 };
  }
  const r = renderStage(imported.spec, root);
  if (!r.ok) return { why: `spec: ${r.problems.join('; ')}`, overrides: imported.overrides };
  const s = r.stage;
  if (path.basename(s.entrypoint) !== path.basename(e.entrypoint)) return { why: `entrypoint ${s.entrypoint}`, overrides: imported.overrides };
  // A flag the script repeats counts once, with its last value, as argparse reads it; a deprecated name
  // (--moe-intermediate-size) is the flag it sets (--moe-ffn-hidden-size), which linkflow passes instead.
  const fw = getFramework(imported.framework);
  const wantArgs = multiset(lastWins(fw ? withNewNames(fw, e.args) : e.args), root);
  const gotArgs = multiset(s.args, root);
  if (JSON.stringify(wantArgs) !== JSON.stringify(gotArgs)) {
    // Multiset differences, so a flag rendered twice shows as extra (includes() would hide it).
    const missing = without(wantArgs, gotArgs);
    const extra = without(gotArgs, wantArgs);
    return { why: `args: missing ${missing.slice(0, 3).join(', ')}; extra ${extra.slice(0, 3).join(', ')}`, overrides: imported.overrides };
  }
  if (JSON.stringify(Object.entries(s.env).sort()) !== JSON.stringify(Object.entries(e.env).sort()))
    return { why: `env ${JSON.stringify(s.env)}`, overrides: imported.overrides };
  if (e.launcher !== 'python') {
    const launcher = s.launcher.join(' ');
    if (!launcher.startsWith(e.launcher)) return { why: `launcher ${launcher}`, overrides: imported.overrides };
    for (const [k, v] of Object.entries(e.distributed)) {
      if (k === 'world_size' || v === null) continue;
      const at = s.launcher.indexOf(`--${k}`);
      if (at < 0 || s.launcher[at + 1] !== String(v)) return { why: `launcher --${k}: ${s.launcher[at + 1]} instead of ${v}`, overrides: imported.overrides };
    }
  }
  return { why: '', overrides: imported.overrides };
}
