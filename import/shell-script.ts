/**
 * Parses a ModelLink example-style shell script (`examples/**.sh`) into the launch it performs:
 * the first half of `linkflow import <script.sh>`.
 *
 * This is an interpreter for the small subset of bash those scripts use, and it never runs anything:
 *   - assignments (`NAME=value`, `NAME+=value`, quoted and multi-line quoted values, `NAME=(a b)` arrays),
 *     `export` / `declare -x`, `unset`, `source` / `.`;
 *   - expansions `$NAME`, `${NAME}`, `${NAME:-word}` (and `-`, `=`, `:=`, `+`, `:+`, `?`, `:?`),
 *     `${#NAME}`, `${A[0]}`, `${#A[@]}`, `$((arithmetic))` with + - * / % ** and parentheses;
 *   - word splitting of unquoted expansions (that is how `$GPT_ARGS` becomes many arguments),
 *     single and double quotes, `$'...'`, backslash escapes, backslash-newline continuations, comments;
 *   - pipelines (`| tee log`), redirections (`> log 2>&1`), `&&` / `||` / `;` lists, `VAR=value` prefixes.
 * What it does not interpret (loops, conditionals, functions, `$(command)`, backticks, heredocs) is
 * reported in `warnings`; variables assigned by such constructs are kept as `${NAME}`.
 *
 * Values follow examples.json (ModelLink reference, see its format_notes): variables with literal values
 * are substituted; user placeholders (free text such as "your data path", or `<master_addr>`) are kept as
 * `${NAME}` and listed in `placeholders` with the script's value; a variable the script never sets expands
 * to nothing (and a warning says so), except inside `export` values where it is inherited from the
 * caller's environment and kept as `${NAME}` (`export LD_LIBRARY_PATH=/x:$LD_LIBRARY_PATH`).
 */ import type { Arg } from '../frameworks/modellink/args.ts';
import { Interpreter } from './shell/interpreter.ts';
import type { DistributedOptions } from './shell/launch-command.ts';
import { Lexer } from './shell/lexer.ts';
import { ShellSyntaxError } from './shell/tokens.ts';

export { looksLikePlaceholder } from './shell/interpreter.ts';
export { groupArgs, type DistributedOptions } from './shell/launch-command.ts';

export interface ParsedScript {
  /** Exported variables (values at the launch), plus `VAR=value` prefixes of the launch command. */
  env: Record<string, string>;
  /** Files given to `source` / `.`, in order. */
  sources: string[];
  /** 'torchrun', 'python', 'python -m torch.distributed.launch' (as written: 'python3', 'python -m torch.distributed.run'…); '' when no launch was found. */
  launcher: 'torchrun' | 'python' | 'python -m torch.distributed.launch' | string;
  distributed: DistributedOptions;
  /** The script the launcher runs, without a leading './' (e.g. 'pretrain_gpt.py'); '' when no launch was found. */
  entrypoint: string;
  /** [flag, value] in command-line order: null for a bare flag, a string for one value, a list for several. */
  args: Arg[];
  /** Placeholder and run-time variables used by the launch: NAME -> the script's original value (e.g. "your data path"). */
  placeholders: Record<string, string>;
  /** Target of `| tee` or of `>` / `>>` / `&>` on the launch command. */
  logFile: string | null;
  /** What could not be understood, or what bash would do differently from what the script seems to mean. */
  warnings: string[];
  /** The complete expanded launch command (launcher, launcher options, entrypoint, arguments). */
  argv: string[];
  /** Every launcher option as [option, value] in order (`distributed` holds the known ones). */
  launcherOptions: [string, string | null][];
  /** Other commands the script runs (mkdir, set -e, echo…), as written; not interpreted. */
  otherCommands: string[];
  /** Flags that appear only in `#` comments (optional extras the authors mention). */
  commentedOutFlags: string[];
  /** Arguments on a separate line after the launch command that lost its continuation backslash (bash does not pass them). */
  orphanedArgs: Arg[];
}

/** Parses a ModelLink example-style shell script. Never executes anything. */
export function parseModelLinkScript(text: string): ParsedScript {
  const src = text.replace(/\r\n/g, '\n');
  const warnings: string[] = [];
  const lexer = new Lexer(src);
  try {
    lexer.run();
  } catch (e) {
    if (!(e instanceof ShellSyntaxError)) throw e;
    warnings.push(`${e.message}: the rest of the script is not parsed`);
  }
  const interp = new Interpreter(src, lexer.tokens);
  interp.run();
  const launch = interp.launch;
  if (!launch) interp.warn('no launch command found (torchrun, python -m torch.distributed.launch, or python <script>.py)');

  const placeholders: Record<string, string> = {};
  const scan = [...(launch?.argv ?? []), launch?.logFile ?? '', ...Object.values(launch?.env ?? interp.currentEnv())];
  for (const s of scan) {
    for (const m of s.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)) {
      const st = interp.vars.get(m[1]);
      if (st?.kind === 'placeholder' || st?.kind === 'dynamic') placeholders[m[1]] = st.original;
    }
  }
  const flags = new Set((launch?.args ?? []).map(([f]) => f));
  const commentedOutFlags: string[] = [];
  for (const c of lexer.comments) {
    for (const m of c.text.matchAll(/(?:^|[^\w-])(--[A-Za-z][A-Za-z0-9_-]*)/g)) {
      if (!flags.has(m[1]) && !commentedOutFlags.includes(m[1])) commentedOutFlags.push(m[1]);
    }
  }
  return {
    env: launch?.env ?? interp.currentEnv(),
    sources: interp.sources,
    launcher: launch?.launcher ?? '',
    distributed: launch?.distributed ?? {},
    entrypoint: launch?.entrypoint ?? '',
    args: launch?.args ?? [],
    placeholders,
    logFile: launch?.logFile ?? null,
    warnings: [...warnings, ...lexer.notes, ...interp.warnings],
    argv: launch?.argv ?? [],
    launcherOptions: launch?.launcherOptions ?? [],
    otherCommands: interp.otherCommands,
    commentedOutFlags,
    orphanedArgs: interp.orphanedArgs,
  };
}
