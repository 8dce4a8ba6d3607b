// The project's lint: typescript-eslint with type information (no floating promises), no import
// cycles, and the layers of README's Development map as import rules: a folder may import only what
// its line there names (some folders only types). The domain folders (frameworks/, spec/, plan/, failures/,
// executors/' pure parts), import/, contracts/ and workflows/ do no I/O. An executor's I/O part lives in
// its io/ sub-folder (executors/<name>/io/): only activities/, worker/ and cli/ may import it.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import prettier from 'eslint-config-prettier';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

const FOLDERS = [
  'bin',
  'cli',
  'client',
  'common',
  'contracts',
  'workflows',
  'activities',
  'worker',
  'node',
  'frameworks',
  'spec',
  'plan',
  'failures',
  'executors',
  'pool',
  'import',
  'benchmark',
  'devserver',
  'perf',
  'testkit',
  'test',
  'scripts',
];

/** Node modules that reach outside the process: the pure layers leave them to their callers. */
/** linkflow's pure core: pipeline spec, plans, failure classification, framework knowledge, executors' pure parts. */
const DOMAIN = ['frameworks', 'spec', 'plan', 'failures', 'executors'];

const IO_MODULES = ['fs', 'fs/promises', 'child_process', 'net', 'os', 'http', 'https', 'dgram', 'worker_threads']
  .flatMap((m) => [m, `node:${m}`])
  .concat('better-sqlite3');

/** Import specifiers that name a top-level folder, from the root or from one or two folders down. */
const specifiers = (folder) => [`./${folder}/*`, `../${folder}/*`, `../../${folder}/*`, `../../../${folder}/*`];

/** An executor's I/O part (executors/<name>/io/), seen from anywhere. */
const EXECUTOR_IO = ['**/executors/*/io/*', './io/*', '../io/*', '../*/io/*'];

/** The layers that may use an executor's I/O part: the rest see only its pure part. */
const EXECUTOR_IO_USERS = ['activities', 'worker', 'cli', 'testkit', 'test', 'perf', 'scripts'];

/** A folder's imports: the folders in `may`, types only from `types`, nothing else of linkflow. */
function layer(name, { may = [], types = [], pure = false, io = false }) {
  const refused = FOLDERS.filter((f) => f !== name && f !== 'common' && !may.includes(f) && !types.includes(f));
  const ioRefused = !io && (may.includes('executors') || name === 'executors') && !EXECUTOR_IO_USERS.includes(name);
  return {
    files: [`${name}/**/*.ts`],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            ...refused.map((f) => ({ group: specifiers(f), message: `${name}/ may not import ${f}/ (README, Development).` })),
            ...types.map((f) => ({
              group: specifiers(f),
              allowTypeImports: true,
              message: `${name}/ may import only types from ${f}/ (README, Development).`,
            })),
            ...(ioRefused
              ? [{ group: EXECUTOR_IO, allowTypeImports: name !== 'executors', message: `${name}/ may not import an executor's I/O part (executors/*/io/).` }]
              : []),
          ],
          paths: pure ? IO_MODULES.map((m) => ({ name: m, message: `${name}/ does no I/O: do it in the calling layer and pass the data in.` })) : [],
        },
      ],
    },
  };
}

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'emulator/**', '.linkflow/**', 'test-artifacts/**', 'test-output/**', '**/*.js', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  importX.flatConfigs.typescript,
  {
    files: ['**/*.ts'],
    // lint-probe.ts: the files test/lint.test.ts lints from text, to prove each rule fires.
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['*/lint-probe.ts', 'executors/*/lint-probe.ts', 'executors/*/io/lint-probe.ts'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver()] },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      'import-x/no-cycle': 'error',
    },
  },
  layer('bin', { may: ['cli'] }),
  layer('cli', { may: ['client', 'benchmark', 'import', 'devserver', 'worker', 'node', ...DOMAIN, 'contracts', 'pool'] }),
  layer('client', { may: ['contracts', ...DOMAIN], types: ['benchmark', 'pool'] }),
  layer('contracts', { types: [...DOMAIN, 'benchmark', 'workflows', 'pool'], pure: true }),
  layer('workflows', { may: ['contracts', ...DOMAIN, 'pool'], types: ['activities', 'benchmark'], pure: true }),
  layer('activities', { may: ['node', ...DOMAIN, 'benchmark', 'contracts', 'pool'] }),
  layer('worker', { may: ['activities', 'node', ...DOMAIN, 'contracts', 'pool'], types: ['workflows'] }),
  layer('node', {}),
  // Framework knowledge imports nothing of linkflow's own but the spec's types: spec/ and plan/ pass it what it needs.
  layer('frameworks', { types: ['spec'], pure: true }),
  ...DOMAIN.filter((name) => name !== 'frameworks').map((name) => layer(name, { may: DOMAIN.filter((f) => f !== name), types: ['contracts'], pure: true })),
  // An executor's I/O part: submit, follow, stop, adopt; node built-ins, node/, its own pure part and the other executors'.
  { ...layer('executors', { may: ['node', ...DOMAIN.filter((f) => f !== 'executors')], types: ['contracts'], io: true }), files: ['executors/*/io/**/*.ts'] },
  layer('pool', { pure: true }),
  layer('import', { may: [...DOMAIN], pure: true }),
  layer('benchmark', { may: [...DOMAIN], types: ['contracts'] }),
  layer('devserver', { may: ['node'] }),
  layer('common', {}),
  prettier,
);
