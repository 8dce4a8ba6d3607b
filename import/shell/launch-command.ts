/** A launch command of an imported script (torchrun, python -m torch.distributed.launch, python <script>) → launcher, options, entrypoint, arguments. */
import type { Arg } from '../../frameworks/modellink/args.ts';
import { wordLiteral } from './lexer.ts';
import type { Word } from './tokens.ts';

/** Launcher options, ints converted. A string is a value that is not an int (a `${NAME}` placeholder,
 * torchrun's `auto`); null means the option was given without a value. */
export interface DistributedOptions {
  nproc_per_node?: number | string | null;
  nnodes?: number | string | null;
  node_rank?: number | string | null;
  master_addr?: string | null;
  master_port?: number | string | null;
  /** nproc_per_node * nnodes, when both are ints. */
  world_size?: number;
}

const LAUNCHER_BOOL_OPTS = new Set(['standalone', 'use_env', 'no_python', 'module', 'm', 'run_path']);
const DIST_KEYS = new Set(['nproc_per_node', 'nnodes', 'node_rank', 'master_addr', 'master_port']);

export interface Launch {
  argv: string[];
  launcher: string;
  launcherOptions: [string, string | null][];
  distributed: DistributedOptions;
  entrypoint: string;
  args: Arg[];
  env: Record<string, string>;
  logFile: string | null;
  line: number;
}

/** Whether a command starts ModelLink: torchrun, or python running a script or -m module. */
export function isLaunch(first: string, words: Word[]): boolean {
  const base = first.split('/').pop() ?? '';
  if (base === 'torchrun') return true;
  if (!/^python[0-9.]*$/.test(base)) return false;
  // python: a script or -m module (not -c code, not a bare interpreter)
  const rest = words.slice(1).map((w) => wordLiteral(w, true) ?? '$');
  for (let k = 0; k < rest.length; k++) {
    const t = rest[k];
    if (t === '-c') return false;
    if (t === '-m') return k + 1 < rest.length;
    if (t === '-W' || t === '-X') {
      k++;
      continue;
    }
    if (/^-[A-Za-z]+$/.test(t)) continue;
    return true;
  }
  return false;
}

/** The launch a command performs: launcher, its options, entrypoint and grouped arguments. */
export function buildLaunch(argv: string[], line: number, warn: (message: string) => void): Launch {
  const base = (argv[0] ?? '').split('/').pop() ?? '';
  let k = 1;
  let launcher = argv[0] ?? '';
  let distributedLauncher = base === 'torchrun';
  const launcherOptions: [string, string | null][] = [];
  let entrypoint = '';
  if (base !== 'torchrun') {
    // python [options] (script | -m module)
    while (k < argv.length && argv[k].startsWith('-') && argv[k] !== '-m') {
      const opt = argv[k++];
      if ((opt === '-W' || opt === '-X') && k < argv.length) launcherOptions.push([opt, argv[k++]]);
      else launcherOptions.push([opt, null]);
    }
    if (argv[k] === '-m') {
      const mod = argv[k + 1] ?? '';
      k += 2;
      if (mod === 'torch.distributed.launch' || mod === 'torch.distributed.run') {
        launcher = `${argv[0]} -m ${mod}`;
        distributedLauncher = true;
      } else {
        launcher = `${argv[0]} -m`;
        entrypoint = mod;
      }
    }
  }
  const distributed: DistributedOptions = {};
  if (distributedLauncher) {
    while (k < argv.length && argv[k].startsWith('-')) {
      const tok = argv[k++];
      const eq = tok.indexOf('=');
      const opt = eq >= 0 ? tok.slice(0, eq) : tok;
      const key = opt.replace(/^-+/, '').replace(/-/g, '_');
      let value: string | null;
      if (LAUNCHER_BOOL_OPTS.has(key)) value = eq >= 0 ? tok.slice(eq + 1) : null;
      else if (eq >= 0) value = tok.slice(eq + 1);
      else if (k < argv.length && !argv[k].startsWith('-')) value = argv[k++];
      else {
        value = null;
        warn(`launcher option ${opt} has no value`);
      }
      launcherOptions.push([opt, value]);
      if (DIST_KEYS.has(key)) {
        const d = distributed as Record<string, number | string | null>;
        d[key] = value === null ? null : key !== 'master_addr' && /^[0-9]+$/.test(value) ? Number(value) : value;
      }
    }
    if (typeof distributed.nproc_per_node === 'number' && typeof distributed.nnodes === 'number')
      distributed.world_size = distributed.nproc_per_node * distributed.nnodes;
  }
  if (!entrypoint) {
    entrypoint = argv[k] ?? '';
    if (entrypoint) k++;
    else warn(`line ${line}: the launch command has no entrypoint script`);
  }
  const { args, positional } = groupArgs(argv.slice(k));
  if (positional.length) warn(`line ${line}: arguments before the first flag are not [flag, value] pairs (kept in argv only): ${positional.join(' ')}`);
  return {
    argv,
    launcher,
    launcherOptions,
    distributed,
    entrypoint: entrypoint.replace(/^(\.\/)+/, ''),
    args,
    env: {},
    logFile: null,
    line,
  };
}

/** Groups tokens as examples.json does: a `--flag` and its values up to the next `--` token (`-1` is a value);
 * `--flag=value` is split into the flag and its value. */
export function groupArgs(tokens: string[]): { args: Arg[]; positional: string[] } {
  const args: Arg[] = [];
  const positional: string[] = [];
  for (const token of tokens) {
    if (token.startsWith('--')) {
      const eq = token.indexOf('=');
      // `--flag=value` is argparse's other spelling of `--flag value`
      args.push(eq > 2 ? [token.slice(0, eq), token.slice(eq + 1)] : [token, null]);
      continue;
    }
    const last = args[args.length - 1];
    if (!last) positional.push(token);
    else last[1] = last[1] === null ? token : Array.isArray(last[1]) ? [...last[1], token] : [last[1], token];
  }
  return { args, positional };
}
