#!/usr/bin/env node
// The `linkflow` command: TypeScript sources run through tsx, no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
await main(process.argv);
// Clients and workers keep handles open; the command is done when main returns. Exit once
// stdout and stderr have drained, so piped output (presets --json is large) is never cut off.
const code = process.exitCode ?? 0;
let pending = 2;
const done = () => {
  if (--pending === 0) process.exit(code);
};
process.stdout.write('', done);
process.stderr.write('', done);
