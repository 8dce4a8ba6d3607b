/** `linkflow import`: a ModelLink example-style shell script → a pipeline spec (YAML). */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { absolutizePaths, importScript } from '../import/import-script.ts';
import { parseModelLinkScript } from '../import/shell-script.ts';
import { nameOf } from '../frameworks/index.ts';
import { ExitError } from '../errors.ts';

export function importCommand(file: string, opts: { preset?: string; name?: string; root: string; output?: string }): void {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ExitError(`cannot read ${file}: ${(e as Error).message}`, 2);
  }
  const name =
    opts.name ??
    path
      .basename(file)
      .replace(/\.sh$/, '')
      .replace(/[^A-Za-z0-9_.-]+/g, '-')
      .replace(/^[^A-Za-z0-9]+/, '') ??
    'imported';
  let result;
  try {
    result = importScript(parseModelLinkScript(text), { name, root: opts.root, preset: opts.preset, scriptPath: file });
  } catch (e) {
    throw new ExitError(`${file}: ${(e as Error).message}`, 2);
  }
  const spec = absolutizePaths(result.spec, opts.root);
  const header = [
    `# Imported by linkflow from ${file}: a ${result.kind} stage of preset ${result.preset}, for ${nameOf(result.framework)} (read from the script; change modellink.flavour/version if it is another).`,
    `# ${result.overrides === 0 ? 'Every flag is expressed by typed options.' : `${result.overrides} flag(s) not covered by typed options are kept verbatim under args.`}`,
    ...result.notes.map((n) => `# note: ${n}`),
    '# Fill in the ${...} placeholders, set workspace, then: linkflow validate <this file>',
  ].join('\n');
  const yaml = `${header}\n${YAML.stringify(spec)}`;
  if (!opts.output) {
    process.stdout.write(yaml);
    return;
  }
  if (fs.existsSync(opts.output)) throw new ExitError(`${opts.output} already exists; linkflow does not overwrite it (choose another --output)`, 1);
  fs.writeFileSync(opts.output, yaml);
  console.error(`wrote ${opts.output}`);
}
