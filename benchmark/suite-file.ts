/** Reads a benchmark suite file (YAML or JSON) and validates it; every problem comes back with its path. */
import fs from 'node:fs';
import path from 'node:path';
import { ExitError } from '../errors.ts';
import { resolvePrograms } from '../plan/plan.ts';
import { formatProblems } from '../spec/spec.ts';
import { parseStructuredText } from '../spec/structured-text.ts';
import { defaultSuite, parseSuite, type BenchmarkSuite, type SuiteResult } from './core.ts';

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

/** The suite of a file (or the default), its workspace made absolute, and how its other relative paths resolve. */
function readSuite(file: string | undefined): { suite: BenchmarkSuite; resolve: (p: string) => string } {
  const result = loadSuiteFile(file);
  if (!result.ok)
    throw new ExitError(
      `${file ?? 'default suite'}: invalid benchmark suite (${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}):\n${formatProblems(result.problems)}`,
      2,
    );
  for (const w of result.warnings) console.error(`warning: ${w.path}: ${w.message}`);
  // Relative to the suite file, or to the current directory for the default suite.
  const base = file ? path.dirname(path.resolve(file)) : process.cwd();
  const resolve = (p: string) => path.resolve(base, p);
  return { suite: { ...result.suite, workspace: resolve(result.suite.workspace) }, resolve };
}

/** The suite for commands that run nothing (names, workspace): ModelLink's location is not needed. */
export function suiteOnly(file: string | undefined): BenchmarkSuite {
  return readSuite(file).suite;
}

/** The suite to run, with every path made absolute: the workers and the report read them wherever they run. */
export function loadSuite(file: string | undefined, env: NodeJS.ProcessEnv = process.env): BenchmarkSuite {
  const { suite, resolve } = readSuite(file);
  // The default suite has no file to say where ModelLink is: the environment can.
  const modellink =
    suite.modellink ??
    (env.LINKFLOW_MODELLINK_ROOT
      ? {
          root: env.LINKFLOW_MODELLINK_ROOT,
          flavour: env.LINKFLOW_MODELLINK_FLAVOUR === 'mindspeed-llm' ? ('mindspeed-llm' as const) : ('modellink' as const),
          ...(env.LINKFLOW_MODELLINK_VERSION ? { version: env.LINKFLOW_MODELLINK_VERSION } : {}),
          python: env.LINKFLOW_MODELLINK_PYTHON ?? 'python',
          launcher: env.LINKFLOW_MODELLINK_LAUNCHER ?? 'torchrun',
          env: {},
        }
      : undefined);
  if (!modellink)
    throw new ExitError(
      `${file ?? 'default suite'}: the suite does not say where ModelLink is: add modellink: { root: … } to a suite file (--suite), or set LINKFLOW_MODELLINK_ROOT`,
      2,
    );
  return {
    ...suite,
    tokenizers: Object.fromEntries(Object.entries(suite.tokenizers).map(([k, v]) => [k, resolve(v)])),
    cases: suite.cases.map((c) => (c.framework?.root ? { ...c, framework: { ...c.framework, root: resolve(c.framework.root) } } : c)),
    modellink: {
      ...resolvePrograms(modellink, resolve),
      root: resolve(modellink.root),
      ...(modellink.setupScript ? { setupScript: resolve(modellink.setupScript) } : {}),
    },
  };
}
