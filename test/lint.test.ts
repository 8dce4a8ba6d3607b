/**
 * The layers of README's Development map are checked by the linter (eslint.config.js), not by
 * reading: each rule here is shown to fire on a probe file linted from text, and to let the allowed
 * imports through. `npm run lint` checks the whole tree.
 */
import { ESLint } from 'eslint';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint({ cwd: path.resolve(import.meta.dirname, '..') });

/** The rule ids reported for `code` placed at `folder`/lint-probe.ts, with their lines. */
async function lint(folder: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: `${folder}/lint-probe.ts` });
  const fatal = result.messages.find((m) => m.fatal);
  if (fatal) throw new Error(`lint probe did not parse: ${fatal.message}`);
  return result.messages.map((m) => `${m.line}:${m.ruleId}`);
}

describe('the lint rules', () => {
  it('frameworks/ does no I/O and imports no side-effect layer', async () => {
    const code =
      "import fs from 'node:fs';\nimport { nodeName } from '../activities/node.ts';\nimport path from 'node:path';\nexport const x = (): unknown => [fs, nodeName, path];\n";
    expect(await lint('frameworks', code)).toEqual(['1:@typescript-eslint/no-restricted-imports', '2:@typescript-eslint/no-restricted-imports']);
  });

  it('workflows/ may take types from activities/, never their code (the workflow sandbox)', async () => {
    const code =
      "import { nodeName } from '../activities/node.ts';\nimport type { NodeInfo } from '../activities/node.ts';\nexport const y = (n?: NodeInfo): unknown => [nodeName, n];\n";
    expect(await lint('workflows', code)).toEqual(['1:@typescript-eslint/no-restricted-imports']);
  });

  it('nothing but bin/ imports cli/, and perf/ is imported by nothing', async () => {
    expect(await lint('client', "import { main } from '../cli/main.ts';\nexport const m = main;\n")).toEqual(['1:@typescript-eslint/no-restricted-imports']);
    expect(await lint('cli', "import * as perf from '../perf/lib.ts';\nexport const p = perf;\n")).toEqual(['1:@typescript-eslint/no-restricted-imports']);
    expect(await lint('cli', "import { startPipeline } from '../client/pipeline.ts';\nexport const s = startPipeline;\n")).toEqual([]);
  });

  it("an executor's I/O part (executors/<name>/io/) is for activities/, worker/ and cli/; its pure part does no I/O", async () => {
    const job = "import { startSlurmJob } from '../executors/slurm/io/job.ts';\nexport const j = startSlurmJob;\n";
    expect(await lint('workflows', job)).toEqual(['1:@typescript-eslint/no-restricted-imports']);
    expect(await lint('plan', job)).toEqual(['1:@typescript-eslint/no-restricted-imports']);
    expect(await lint('activities', job)).toEqual([]);
    expect(await lint('executors/slurm', "import { sbatch } from './io/commands.ts';\nexport const s = sbatch;\n")).toEqual([
      '1:@typescript-eslint/no-restricted-imports',
    ]);
    expect(await lint('executors/slurm', "import fs from 'node:fs';\nexport const f = fs;\n")).toEqual(['1:@typescript-eslint/no-restricted-imports']);
    expect(await lint('executors/slurm/io', "import fs from 'node:fs';\nimport { jobName } from '../plan.ts';\nexport const f = [fs, jobName];\n")).toEqual([]);
    expect(await lint('executors/slurm/io', "import { nodeName } from '../../../activities/node.ts';\nexport const n = nodeName;\n")).toEqual([
      '1:@typescript-eslint/no-restricted-imports',
    ]);
  });

  it('a promise nobody awaits is an error', async () => {
    const code = 'async function save(): Promise<void> {}\nexport function stop(): void {\n  save();\n}\n';
    expect(await lint('activities', code)).toEqual(['3:@typescript-eslint/no-floating-promises']);
  });
});
