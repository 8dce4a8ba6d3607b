#!/usr/bin/env node
// The `linkflow` command: TypeScript sources run through tsx, no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
await main(process.argv);
// Clients and workers keep handles open; the command is done when main returns.
process.exit(process.exitCode ?? 0);
