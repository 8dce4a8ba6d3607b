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
 */
import type { Arg } from '../frameworks/modellink/args.ts';

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

// ---------------------------------------------------------------------------------------------
// Lexer

type Part =
  | { t: 'lit'; s: string; q: boolean }
  | { t: 'var'; name: string; q: boolean; raw: string; index?: string; op?: string; word?: Part[]; len?: boolean }
  | { t: 'arith'; expr: string; q: boolean; raw: string }
  | { t: 'cmd'; raw: string; q: boolean }
  | { t: 'bad'; raw: string; q: boolean; why: string }
  | { t: 'array'; items: Word[]; raw: string }
  | { t: 'angle'; s: string };

interface Word {
  k: 'word';
  parts: Part[];
  line: number;
  start: number;
  end: number;
}
interface Op {
  k: 'op';
  op: string;
  line: number;
  start: number;
  end: number;
}
interface Redir {
  k: 'redir';
  op: string;
  fd: number | null;
  target: Word | null;
  dup: string | null;
  line: number;
  start: number;
  end: number;
}
type Token = Word | Op | Redir;

interface Comment {
  line: number;
  text: string;
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*/;
const WORD_BREAK = new Set([' ', '\t', '\n', ';', '&', '|', '(', ')', '<', '>']);

class ShellSyntaxError extends Error {}

class Lexer {
  i = 0;
  line = 1;
  readonly tokens: Token[] = [];
  readonly comments: Comment[] = [];
  readonly notes: string[] = [];
  private heredocs: { delim: string; strip: boolean }[] = [];

  constructor(private readonly src: string) {}

  run(): void {
    const s = this.src;
    while (this.i < s.length) {
      const c = s[this.i];
      if (c === ' ' || c === '\t' || c === '\r') {
        this.i++;
      } else if (c === '\\' && s[this.i + 1] === '\n') {
        this.i += 2;
        this.line++;
      } else if (c === '\\' && s[this.i + 1] === '\r' && s[this.i + 2] === '\n') {
        this.i += 3;
        this.line++;
      } else if (c === '\n') {
        this.op('\n', 1);
        this.line++;
        if (this.heredocs.length) this.skipHeredocs();
      } else if (c === '#') {
        const end = s.indexOf('\n', this.i);
        const stop = end < 0 ? s.length : end;
        this.comments.push({ line: this.line, text: s.slice(this.i + 1, stop) });
        this.i = stop;
      } else if (c === ';') {
        this.op(s[this.i + 1] === ';' ? ';;' : ';', s[this.i + 1] === ';' ? 2 : 1);
      } else if (c === '|') {
        if (s[this.i + 1] === '|') this.op('||', 2);
        else if (s[this.i + 1] === '&') this.op('|&', 2);
        else this.op('|', 1);
      } else if (c === '&') {
        if (s[this.i + 1] === '&') this.op('&&', 2);
        else if (s[this.i + 1] === '>') this.redirection(null);
        else this.op('&', 1);
      } else if (c === '(' || c === ')') {
        this.op(c, 1);
      } else if (c === '<' || c === '>') {
        const angle = this.angleAt(this.i);
        if (c === '<' && angle) {
          const start = this.i;
          this.i += angle.length;
          this.tokens.push({ k: 'word', parts: [{ t: 'angle', s: angle }], line: this.line, start, end: this.i });
        } else this.redirection(null);
      } else if (/[0-9]/.test(c)) {
        const m = /^[0-9]+(?=[<>])/.exec(s.slice(this.i, this.i + 12));
        if (m) {
          const fd = Number(m[0]);
          this.i += m[0].length;
          this.redirection(fd);
        } else this.pushWord();
      } else {
        this.pushWord();
      }
    }
  }

  private pushWord(): void {
    const w = this.readWord();
    if (w.parts.length) this.tokens.push(w);
  }

  private op(op: string, len: number): void {
    this.tokens.push({ k: 'op', op, line: this.line, start: this.i, end: this.i + len });
    this.i += len;
  }

  /** `<master_addr>` and the like: not bash (it parses as redirections), but clearly a placeholder. */
  private angleAt(i: number): string | null {
    const m = /^<[^<>\s|;&()]([^<>\n|;&()]*[^<>\s|;&()])?>(?=[ \t\r\n;|&)]|$)/.exec(this.src.slice(i, i + 200));
    return m ? m[0] : null;
  }

  private redirection(fd: number | null): void {
    const s = this.src;
    const start = this.i;
    const line = this.line;
    let op: string;
    for (op of ['&>>', '&>', '<<<', '<<-', '<<', '>>', '>&', '<&', '>|', '<>', '>', '<']) {
      if (s.startsWith(op, this.i)) break;
    }
    this.i += op!.length;
    while (s[this.i] === ' ' || s[this.i] === '\t') this.i++;
    let target: Word | null = null;
    let dup: string | null = null;
    if ((op! === '>&' || op! === '<&') && /[0-9-]/.test(s[this.i] ?? '')) {
      const m = /^[0-9]+|^-/.exec(s.slice(this.i))!;
      dup = m[0];
      this.i += m[0].length;
    } else if (this.i < s.length && !WORD_BREAK.has(s[this.i])) {
      target = this.readWord();
    }
    if (op! === '<<' || op! === '<<-') {
      if (target) {
        const delim = wordLiteral(target, true) ?? '';
        this.heredocs.push({ delim, strip: op! === '<<-' });
        this.notes.push(`line ${line}: here-document (<<${delim}) is not interpreted; its body is skipped`);
      }
    }
    this.tokens.push({ k: 'redir', op: op!, fd, target, dup, line, start, end: this.i });
  }

  private skipHeredocs(): void {
    const s = this.src;
    for (const h of this.heredocs) {
      while (this.i < s.length) {
        const end = s.indexOf('\n', this.i);
        const stop = end < 0 ? s.length : end;
        let text = s.slice(this.i, stop).replace(/\r$/, '');
        if (h.strip) text = text.replace(/^\t+/, '');
        this.i = end < 0 ? s.length : end + 1;
        this.line++;
        if (text === h.delim) break;
      }
    }
    this.heredocs = [];
  }

  readWord(): Word {
    const s = this.src;
    const start = this.i;
    const line = this.line;
    const parts: Part[] = [];
    const lit = (text: string, q: boolean) => {
      const last = parts[parts.length - 1];
      if (last && last.t === 'lit' && last.q === q) last.s += text;
      else parts.push({ t: 'lit', s: text, q });
    };
    while (this.i < s.length) {
      const c = s[this.i];
      if (WORD_BREAK.has(c) || c === '\r') {
        const prefix = assignmentPrefix(parts);
        if (prefix !== null && parts.length === 1 && (parts[0] as { s: string }).s === prefix) {
          if (c === '<') {
            const angle = this.angleAt(this.i);
            if (angle) {
              parts.push({ t: 'angle', s: angle });
              this.i += angle.length;
              continue;
            }
          }
          if (c === '(') {
            parts.push(this.readArray());
            continue;
          }
        }
        break;
      }
      if (c === '\\') {
        const n = s[this.i + 1];
        if (n === '\n') {
          this.i += 2;
          this.line++;
        } else if (n === '\r' && s[this.i + 2] === '\n') {
          this.i += 3;
          this.line++;
        } else if (n === undefined) {
          // a backslash at the very end of the script: bash drops it
          this.i++;
        } else {
          lit(n, true);
          this.i += 2;
        }
      } else if (c === "'") {
        const end = s.indexOf("'", this.i + 1);
        if (end < 0) throw new ShellSyntaxError(`line ${this.line}: unterminated single quote`);
        const text = s.slice(this.i + 1, end);
        this.line += countLines(text);
        lit(text, true);
        this.i = end + 1;
      } else if (c === '"') {
        this.i++;
        this.readDouble(parts, lit);
      } else if (c === '$' && s[this.i + 1] === "'") {
        this.i += 2;
        lit(this.readAnsiC(), true);
      } else if (c === '$' && s[this.i + 1] === '"') {
        this.i += 2;
        this.readDouble(parts, lit);
      } else if (c === '$') {
        const p = this.readDollar(false);
        if (p.t === 'lit') lit(p.s, false);
        else parts.push(p);
      } else if (c === '`') {
        parts.push(this.readBacktick(false));
      } else {
        lit(c, false);
        this.i++;
      }
    }
    return { k: 'word', parts, line, start, end: this.i };
  }

  /** After `NAME=` and at `(`: an array literal, items are words up to the matching `)`. */
  private readArray(): Part {
    const s = this.src;
    const start = this.i;
    this.i++;
    const items: Word[] = [];
    for (;;) {
      while (this.i < s.length && /[ \t\r\n]/.test(s[this.i])) {
        if (s[this.i] === '\n') this.line++;
        this.i++;
      }
      if (this.i >= s.length) throw new ShellSyntaxError(`line ${this.line}: unterminated array literal`);
      if (s[this.i] === ')') {
        this.i++;
        break;
      }
      if (s[this.i] === '#') {
        const end = s.indexOf('\n', this.i);
        this.i = end < 0 ? s.length : end;
        continue;
      }
      const w = this.readWord();
      if (w.end === w.start) throw new ShellSyntaxError(`line ${this.line}: unexpected '${s[this.i]}' in an array literal`);
      items.push(w);
    }
    return { t: 'array', items, raw: s.slice(start, this.i) };
  }

  private readDouble(parts: Part[], lit: (text: string, q: boolean) => void): void {
    const s = this.src;
    const startLine = this.line;
    let empty = true;
    while (this.i < s.length && s[this.i] !== '"') {
      const c = s[this.i];
      empty = false;
      if (c === '\\') {
        const n = s[this.i + 1];
        if (n === '\n') {
          this.i += 2;
          this.line++;
        } else if (n === '$' || n === '`' || n === '"' || n === '\\') {
          lit(n, true);
          this.i += 2;
        } else {
          lit('\\', true);
          this.i++;
        }
      } else if (c === '$') {
        const p = this.readDollar(true);
        if (p.t === 'lit') lit(p.s, true);
        else parts.push(p);
      } else if (c === '`') {
        parts.push(this.readBacktick(true));
      } else {
        if (c === '\n') this.line++;
        lit(c, true);
        this.i++;
      }
    }
    if (this.i >= s.length) throw new ShellSyntaxError(`line ${startLine}: unterminated double quote`);
    this.i++;
    if (empty) lit('', true);
  }

  private readAnsiC(): string {
    const s = this.src;
    let out = '';
    const map: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', a: '\x07', b: '\b', e: '\x1b', f: '\f', v: '\v' };
    while (this.i < s.length && s[this.i] !== "'") {
      if (s[this.i] === '\\' && this.i + 1 < s.length) {
        const n = s[this.i + 1];
        out += map[n] ?? '\\' + n;
        this.i += 2;
      } else {
        if (s[this.i] === '\n') this.line++;
        out += s[this.i++];
      }
    }
    if (this.i >= s.length) throw new ShellSyntaxError(`line ${this.line}: unterminated $'...' string`);
    this.i++;
    return out;
  }

  private readBacktick(q: boolean): Part {
    const s = this.src;
    const start = this.i;
    this.i++;
    while (this.i < s.length && s[this.i] !== '`') {
      if (s[this.i] === '\\') this.i++;
      if (s[this.i] === '\n') this.line++;
      this.i++;
    }
    if (this.i >= s.length) throw new ShellSyntaxError(`line ${this.line}: unterminated backquote`);
    this.i++;
    return { t: 'cmd', raw: s.slice(start, this.i), q };
  }

  /** Index just past the `close` that matches an already-consumed opener, skipping quoted text. */
  private scanBalanced(from: number, open: string, close: string): number {
    const s = this.src;
    let depth = 1;
    let i = from;
    while (i < s.length) {
      const c = s[i];
      if (c === '\\') {
        i += 2;
        continue;
      }
      if (c === "'") {
        const end = s.indexOf("'", i + 1);
        if (end < 0) break;
        i = end + 1;
        continue;
      }
      if (c === '"') {
        i++;
        while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
        i++;
        continue;
      }
      if (c === open) depth++;
      else if (c === close && --depth === 0) return i + 1;
      i++;
    }
    throw new ShellSyntaxError(`line ${this.line}: no matching '${close}'`);
  }

  private readDollar(q: boolean): Part {
    const s = this.src;
    const start = this.i;
    const advance = (to: number) => {
      this.line += countLines(s.slice(this.i, to));
      this.i = to;
    };
    if (s.startsWith('$((', this.i)) {
      const end = this.scanBalanced(this.i + 2, '(', ')');
      if (s[end - 2] === ')') {
        advance(end);
        return { t: 'arith', expr: s.slice(start + 3, end - 2), q, raw: s.slice(start, this.i) };
      }
      // `$( (subshell) )`: a command substitution after all
      advance(end);
      return { t: 'cmd', raw: s.slice(start, this.i), q };
    }
    if (s[this.i + 1] === '(') {
      advance(this.scanBalanced(this.i + 2, '(', ')'));
      return { t: 'cmd', raw: s.slice(start, this.i), q };
    }
    if (s[this.i + 1] === '{') {
      advance(this.scanBalanced(this.i + 2, '{', '}'));
      const raw = s.slice(start, this.i);
      return parseBraced(raw.slice(2, -1), raw, q);
    }
    const m = NAME_RE.exec(s.slice(this.i + 1, this.i + 200));
    if (m) {
      this.i += 1 + m[0].length;
      return { t: 'var', name: m[0], q, raw: s.slice(start, this.i) };
    }
    const c = s[this.i + 1];
    if (c !== undefined && /[0-9@*#?$!-]/.test(c)) {
      this.i += 2;
      return { t: 'var', name: c, q, raw: s.slice(start, this.i) };
    }
    this.i++;
    return { t: 'lit', s: '$', q };
  }
}

function countLines(text: string): number {
  let n = 0;
  for (const c of text) if (c === '\n') n++;
  return n;
}

/** `${...}` contents → a part. */
function parseBraced(inner: string, raw: string, q: boolean): Part {
  let m = /^#([A-Za-z_][A-Za-z0-9_]*)(\[[@*]\])?$/.exec(inner);
  if (m) return { t: 'var', name: m[1], q, raw, len: true, index: m[2] ? '@' : undefined };
  m = /^([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])(?:\[([^\]]*)\])?([\s\S]*)$/.exec(inner);
  if (!m) return { t: 'bad', raw, q, why: 'unsupported parameter expansion' };
  const [, name, index, rest] = m;
  if (rest === '') return { t: 'var', name, q, raw, index };
  const op = /^(:-|:=|:\+|:\?|-|=|\+|\?)/.exec(rest);
  if (!op) return { t: 'bad', raw, q, why: 'unsupported parameter expansion' };
  const wordText = rest.slice(op[0].length);
  let word: Part[];
  try {
    word = lexLoose(wordText);
  } catch {
    return { t: 'bad', raw, q, why: 'unparseable default value' };
  }
  return { t: 'var', name, q, raw, index, op: op[0], word };
}

/** A word's text where blanks are ordinary characters (the word of `${X:-word}`). */
function lexLoose(text: string): Part[] {
  // Protect blanks and operators from the word reader by escaping them, then mark those escapes unquoted again.
  const lx = new Lexer(text.replace(/[ \t\n;&|()<>]/g, (c) => `\\${c}`));
  const w = lx.readWord();
  return w.parts.map((p) => (p.t === 'lit' && p.q && /^[ \t\n;&|()<>]+$/.test(p.s) ? { ...p, q: false } : p));
}

/** The unquoted literal text of a word, or null when it has quotes or expansions (allowQuoted: quotes are fine). */
function wordLiteral(w: Word, allowQuoted = false): string | null {
  let out = '';
  for (const p of w.parts) {
    if (p.t !== 'lit' || (p.q && !allowQuoted)) return null;
    out += p.s;
  }
  return out;
}

/** `NAME=` / `NAME+=` when the word starts an assignment (the prefix must be unquoted). */
function assignmentPrefix(parts: Part[]): string | null {
  const first = parts[0];
  if (!first || first.t !== 'lit' || first.q) return null;
  const m = /^[A-Za-z_][A-Za-z0-9_]*\+?=/.exec(first.s);
  return m ? m[0] : null;
}

function splitAssignment(w: Word): { name: string; append: boolean; value: Part[] } | null {
  const prefix = assignmentPrefix(w.parts);
  if (prefix === null) return null;
  const first = w.parts[0] as { t: 'lit'; s: string; q: boolean };
  const rest = first.s.slice(prefix.length);
  const value: Part[] = rest ? [{ t: 'lit', s: rest, q: false }, ...w.parts.slice(1)] : w.parts.slice(1);
  const append = prefix.endsWith('+=');
  return { name: prefix.slice(0, append ? -2 : -1), append, value };
}

// ---------------------------------------------------------------------------------------------
// Interpreter

type VarState =
  | { kind: 'value'; value: string }
  | { kind: 'array'; items: string[] }
  /** free text the user must replace: kept as ${NAME} */
  | { kind: 'placeholder'; original: string }
  /** computed at run time ($(...), backticks, loops): kept as ${NAME} */
  | { kind: 'dynamic'; original: string; reason: string };

interface Chunk {
  text: string;
  /** from an unquoted expansion: subject to word splitting */
  split: boolean;
  /** could not be computed (command substitution, bad arithmetic…) */
  unresolved?: string;
}

type Mode = 'arg' | 'assign' | 'export';

const PROSE_WORDS = new Set([
  'your',
  'path',
  'paths',
  'file',
  'files',
  'dir',
  'dirs',
  'directory',
  'folder',
  'for',
  'the',
  'of',
  'here',
  'please',
  'fill',
  'enter',
  'replace',
  'ip',
  'address',
  'location',
  'todo',
]);

/**
 * Whether a variable's literal value is a user placeholder rather than a value: `<...>`, a "your ..." phrase,
 * or free text (blanks, no leading dash, and an English word such as "path", "file", "for").
 * A list of values ("0.5 a_text_document 0.5 b_text_document", "query_key_value dense") is not free text.
 */
export function looksLikePlaceholder(value: string): boolean {
  const t = value.trim();
  if (t === '') return false;
  if (/^<[^<>]+>$/.test(t)) return true;
  if (/^your([\s_-]|$)/i.test(t)) return true;
  if (!/\s/.test(t) || t.startsWith('-')) return false;
  return t.split(/\s+/).some((w) => PROSE_WORDS.has(w.toLowerCase().replace(/^[("'`]+|[)"'`,.:;!?]+$/g, '')));
}

const LAUNCHER_BOOL_OPTS = new Set(['standalone', 'use_env', 'no_python', 'module', 'm', 'run_path']);
const DIST_KEYS = new Set(['nproc_per_node', 'nnodes', 'node_rank', 'master_addr', 'master_port']);
const COMPOUND_CLOSER: Record<string, string> = { for: 'done', while: 'done', until: 'done', select: 'done', if: 'fi', case: 'esac', '{': '}' };
const SEPARATORS = new Set(['\n', ';', '&', ';;']);

interface Launch {
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

class Interpreter {
  readonly vars = new Map<string, VarState>();
  readonly exported: string[] = [];
  readonly sources: string[] = [];
  readonly warnings: string[] = [];
  readonly otherCommands: string[] = [];
  readonly orphanedArgs: Arg[] = [];
  launch: Launch | null = null;
  private warned = new Set<string>();
  private pos = 0;

  constructor(
    private readonly src: string,
    private readonly tokens: Token[],
  ) {}

  warn(message: string, key = message): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.warnings.push(message);
  }

  private peek(): Token | undefined {
    return this.tokens[this.pos];
  }

  private isOp(t: Token | undefined, ...ops: string[]): boolean {
    return t !== undefined && t.k === 'op' && ops.includes(t.op);
  }

  private raw(start: number, end: number): string {
    return this.src
      .slice(start, end)
      .replace(/\\\r?\n[ \t]*/g, ' ')
      .replace(/[ \t]+/g, ' ')
      .trim();
  }

  run(): void {
    while (this.pos < this.tokens.length) {
      const t = this.peek()!;
      if (this.isOp(t, '\n', ';', '&')) {
        this.pos++;
        continue;
      }
      if (t.k === 'op' && ['|', '||', '&&', '|&', ';;', ')'].includes(t.op)) {
        if (t.op === '|' || t.op === '|&')
          this.warn(
            `line ${t.line}: '|' at the start of a line (previous line lacks a continuation backslash); bash runs the launch command unpiped, then stops with a syntax error here`,
          );
        else this.warn(`line ${t.line}: unexpected '${t.op}' (a bash syntax error)`);
        this.pos++;
        continue;
      }
      this.andOrList();
    }
  }

  private andOrList(): void {
    for (;;) {
      this.pipeline();
      const t = this.peek();
      if (this.isOp(t, '&&', '||')) {
        this.pos++;
        while (this.isOp(this.peek(), '\n')) this.pos++;
        continue;
      }
      return;
    }
  }

  private pipeline(): void {
    const commands: { words: Word[]; redirs: Redir[]; start: number; end: number; line: number }[] = [];
    for (;;) {
      const t = this.peek();
      if (t === undefined) break;
      if (this.isCompoundStart()) {
        this.skipCompound();
      } else {
        const cmd = this.simpleCommand();
        if (cmd) commands.push(cmd);
      }
      if (this.isOp(this.peek(), '|', '|&')) {
        this.pos++;
        while (this.isOp(this.peek(), '\n')) this.pos++;
        continue;
      }
      break;
    }
    if (commands.length) this.execPipeline(commands);
  }

  private simpleCommand(): { words: Word[]; redirs: Redir[]; start: number; end: number; line: number } | null {
    const words: Word[] = [];
    const redirs: Redir[] = [];
    const first = this.peek()!;
    let end = first.start;
    while (this.pos < this.tokens.length) {
      const t = this.peek()!;
      if (t.k === 'op') {
        if (t.op === '(') {
          this.warn(`line ${t.line}: unexpected '(' (a bash syntax error)`);
          this.pos++;
          continue;
        }
        break;
      }
      if (t.k === 'word') words.push(t);
      else redirs.push(t);
      end = t.end;
      this.pos++;
    }
    if (!words.length && !redirs.length) {
      this.pos++;
      return null;
    }
    return { words, redirs, start: first.start, end, line: first.line };
  }

  /** At a command position: a compound command or function definition this parser does not interpret. */
  private isCompoundStart(): boolean {
    const t = this.peek();
    if (t === undefined) return false;
    if (this.isOp(t, '(')) return true;
    if (t.k !== 'word') return false;
    const text = wordLiteral(t);
    if (text === null) return false;
    if (text in COMPOUND_CLOSER || text === 'function' || text === '[[') return true;
    const next = this.tokens[this.pos + 1];
    const after = this.tokens[this.pos + 2];
    return /^[A-Za-z_][\w.-]*$/.test(text) && this.isOp(next, '(') && this.isOp(after, ')');
  }

  /** Skips a compound command; variables assigned inside it become run-time values. */
  private skipCompound(): void {
    const first = this.peek()!;
    const firstText = first.k === 'word' ? wordLiteral(first) : '(';
    const stack: string[] = [];
    const assigned: string[] = [];
    const launches: number[] = [];
    let cmdPos = true;
    let what: string;
    if (firstText === 'function' || (first.k === 'word' && this.isOp(this.tokens[this.pos + 1], '('))) {
      what = `function definition ${firstText === 'function' ? '' : firstText}`.trim();
      // skip `name ( )` / `function name [( )]`; the body is the compound that follows
      this.pos++;
      if (firstText === 'function') this.pos++;
      if (this.isOp(this.peek(), '(') && this.isOp(this.tokens[this.pos + 1], ')')) this.pos += 2;
      while (this.isOp(this.peek(), '\n')) this.pos++;
    } else if (firstText === '[[') {
      what = `'${firstText}' test`;
      const closer = ']]';
      while (this.pos < this.tokens.length) {
        const t = this.tokens[this.pos++];
        if (t.k === 'word' && wordLiteral(t) === closer) break;
        if (t.k === 'op' && SEPARATORS.has(t.op)) break;
      }
      this.warn(`line ${first.line}: ${what} is not interpreted (linkflow reads a subset of bash)`);
      return;
    } else {
      what =
        firstText === '('
          ? 'subshell ( ... )'
          : `'${firstText}' ${firstText === 'if' || firstText === 'case' ? 'statement' : firstText === '{' ? 'group' : 'loop'}`;
    }
    const startPos = this.pos;
    while (this.pos < this.tokens.length) {
      const t = this.tokens[this.pos++];
      if (t.k === 'op') {
        if (t.op === '(' && cmdPos && stack[stack.length - 1] !== 'esac') stack.push(')');
        else if (t.op === ')' && stack[stack.length - 1] === ')') stack.pop();
        cmdPos = true;
      } else if (t.k === 'word') {
        const text = wordLiteral(t);
        if (cmdPos && text !== null && stack.length && text === stack[stack.length - 1]) {
          stack.pop();
          cmdPos = text !== 'esac' && text !== 'done' && text !== 'fi' && text !== '}' ? true : false;
        } else if (cmdPos && text !== null && text in COMPOUND_CLOSER) {
          stack.push(COMPOUND_CLOSER[text]);
          cmdPos = text === '{';
        } else if (cmdPos && text !== null && ['do', 'then', 'else', 'elif', '!', 'in'].includes(text)) {
          cmdPos = true;
        } else {
          const a = cmdPos ? splitAssignment(t) : null;
          if (a) assigned.push(a.name);
          else {
            if (cmdPos && text !== null && /^(torchrun|python[0-9.]*)$/.test(text.split('/').pop() ?? '')) launches.push(t.line);
            cmdPos = false;
          }
        }
      }
      if (stack.length === 0 && this.pos > startPos) break;
    }
    // redirections / the rest of the statement belong to the compound
    while (this.pos < this.tokens.length && !this.isOp(this.peek(), '\n', ';', '&', '&&', '||')) this.pos++;
    const uniq = [...new Set(assigned)];
    for (const name of uniq) {
      const prev = this.vars.get(name);
      const original = prev?.kind === 'value' ? prev.value : prev?.kind === 'placeholder' || prev?.kind === 'dynamic' ? prev.original : '';
      this.vars.set(name, { kind: 'dynamic', original, reason: `assigned inside the ${what} at line ${first.line}` });
    }
    this.warn(
      `line ${first.line}: ${what} is not interpreted (linkflow reads a subset of bash)` +
        (uniq.length ? `; variables it assigns are treated as computed at run time and kept as \${NAME}: ${uniq.join(', ')}` : '') +
        (launches.length ? `; it contains a launch command (line ${launches.join(', line ')}), which is not parsed` : ''),
    );
  }

  // ---- expansion

  private lookup(name: string): VarState | undefined {
    return this.vars.get(name);
  }

  private pinned(name: string): Chunk {
    return { text: `\${${name}}`, split: false };
  }

  private expandVar(p: Extract<Part, { t: 'var' }>, mode: Mode, line: number): Chunk[] {
    const split = !p.q && mode === 'arg';
    const name = p.name;
    if (/^[0-9]$/.test(name) || /^[0-9]+$/.test(name)) {
      this.warn(`line ${line}: ${p.raw} is an argument of the script itself; kept as \${${name}}`, `positional ${name}`);
      return [this.pinned(name)];
    }
    if (/^[@*#?$!-]$/.test(name)) {
      this.warn(`line ${line}: special parameter ${p.raw} is not interpreted; it expands to nothing here`, `special ${name}`);
      return [{ text: '', split }];
    }
    const state = this.lookup(name);
    if (p.len) {
      if (state?.kind === 'array') return [{ text: String(p.index ? state.items.length : (state.items[0] ?? '').length), split }];
      if (state?.kind === 'value') return [{ text: String(state.value.length), split }];
      if (state === undefined) return [{ text: '0', split }];
      return [{ text: p.raw, split: false, unresolved: `length of run-time value ${name}` }];
    }
    const isSet = state !== undefined;
    let value: Chunk[] | null = null;
    if (state?.kind === 'value') value = [{ text: state.value, split }];
    else if (state?.kind === 'array') {
      if (p.index === undefined || p.index === '0') value = [{ text: state.items[0] ?? '', split }];
      else if (p.index === '@' || p.index === '*') value = [{ text: state.items.join(' '), split }];
      else {
        const idx = this.arith(p.index, line);
        if (idx === null) return [{ text: p.raw, split: false, unresolved: `array index ${p.index}` }];
        value = [{ text: state.items[Number(idx)] ?? '', split }];
      }
    } else if (state?.kind === 'placeholder') value = [this.pinned(name)];
    else if (state?.kind === 'dynamic') {
      this.warn(`variable $${name} is computed at run time (${state.reason}); kept as \${${name}}`, `dynamic ${name}`);
      value = [this.pinned(name)];
    }
    const empty = value === null || (value.length === 1 && value[0].text === '');
    const expandWord = () => {
      const chunks = this.expandParts(p.word ?? [], mode, line, !p.q);
      return p.q ? chunks.map((c) => ({ ...c, split: false })) : chunks.map((c) => ({ ...c, split: c.split && mode === 'arg' }));
    };
    switch (p.op) {
      case ':-':
        if (empty) return expandWord();
        break;
      case '-':
        if (!isSet) return expandWord();
        break;
      case ':=':
      case '=':
        if (p.op === ':=' ? empty : !isSet) {
          const chunks = expandWord();
          this.vars.set(name, { kind: 'value', value: chunks.map((c) => c.text).join('') });
          return chunks;
        }
        break;
      case ':+':
        return empty ? [{ text: '', split }] : expandWord();
      case '+':
        return isSet ? expandWord() : [{ text: '', split }];
      case ':?':
      case '?':
        if (p.op === ':?' ? empty : !isSet) this.warn(`line ${line}: ${p.raw}: bash stops the script here when ${name} is unset`, `unset? ${name}`);
        break;
    }
    if (value !== null) return value;
    if (mode === 'export') return [this.pinned(name)];
    this.warn(`variable $${name} is used but never set in the script; bash expands it to nothing`, `unset ${name}`);
    return [{ text: '', split }];
  }

  /** splitLiterals: unquoted literal text is split too (the word of an unquoted `${X:-a b}`). */
  expandParts(parts: Part[], mode: Mode, line: number, splitLiterals = false): Chunk[] {
    const out: Chunk[] = [];
    for (const p of parts) {
      switch (p.t) {
        case 'lit':
          out.push({ text: p.s, split: splitLiterals && !p.q && mode === 'arg' });
          break;
        case 'angle':
          if (mode === 'arg')
            this.warn(`line ${line}: ${p.s} is not valid bash (it parses as redirections and bash stops with a syntax error); kept as written`);
          out.push({ text: p.s, split: false });
          break;
        case 'var':
          out.push(...this.expandVar(p, mode, line));
          break;
        case 'arith': {
          const v = this.arith(p.expr, line);
          if (v === null) out.push({ text: p.raw, split: false, unresolved: `arithmetic ${p.raw}` });
          else out.push({ text: v, split: !p.q && mode === 'arg' });
          break;
        }
        case 'cmd':
          out.push({ text: p.raw, split: false, unresolved: `command substitution ${p.raw}` });
          break;
        case 'bad':
          out.push({ text: p.raw, split: false, unresolved: `${p.why} ${p.raw}` });
          break;
        case 'array':
          out.push({ text: p.raw, split: false, unresolved: 'array literal' });
          break;
      }
    }
    return out;
  }

  /** Expands words into fields (with word splitting), as bash passes them to a command. */
  expandWords(words: Word[], what: string): string[] {
    const fields: string[] = [];
    for (const w of words) {
      const chunks = this.expandParts(w.parts, 'arg', w.line);
      for (const c of chunks)
        if (c.unresolved) this.warn(`line ${w.line}: ${c.unresolved} in ${what} is not evaluated (linkflow never runs commands); kept as written: ${c.text}`);
      let cur = '';
      let active = false;
      for (const c of chunks) {
        if (!c.split) {
          cur += c.text;
          active = true;
          continue;
        }
        if (/["']/.test(c.text))
          this.warn(
            `line ${w.line}: quote characters inside a variable's value are passed literally by bash (they do not group words when the variable is expanded unquoted)`,
            `quotes ${w.line}`,
          );
        if (/(^|[ \t\n])#/.test(c.text))
          this.warn(`line ${w.line}: '#' inside a variable's value is not a comment; bash passes it (and what follows) as arguments`, `hash ${w.line}`);
        for (const ch of c.text) {
          if (ch === ' ' || ch === '\t' || ch === '\n') {
            if (active) fields.push(cur);
            cur = '';
            active = false;
          } else {
            cur += ch;
            active = true;
          }
        }
      }
      if (active) fields.push(cur);
    }
    return fields;
  }

  private expandString(w: Word): string {
    return this.expandParts(w.parts, 'assign', w.line)
      .map((c) => c.text)
      .join('');
  }

  /** Evaluates `$(( ))` contents: + - * / % ** and parentheses over ints and variables; null when it cannot. */
  arith(exprIn: string, line: number): string | null {
    // $NAME and ${NAME} are substituted as text first, as bash does
    let failed = false;
    const expr = exprIn.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_m, a: string | undefined, b: string | undefined) => {
      const name = (a ?? b)!;
      const st = this.lookup(name);
      if (st === undefined) {
        this.warn(`variable $${name} is used but never set in the script; bash expands it to nothing`, `unset ${name}`);
        return '';
      }
      if (st.kind === 'value') return st.value;
      if (st.kind === 'array') return st.items[0] ?? '';
      failed = true;
      return '';
    });
    if (failed || /\$/.test(expr)) {
      this.warn(`line ${line}: $((${exprIn})) depends on a value not known before run time; kept as written`);
      return null;
    }
    const tokens = expr.match(/\s*(0[xX][0-9a-fA-F]+|[0-9]+|[A-Za-z_][A-Za-z0-9_]*|\*\*|[-+*/%()]|\S)/g)?.map((t) => t.trim()) ?? [];
    let i = 0;
    const depthGuard = { n: 0 };
    const fail = (why: string): never => {
      throw new Error(why);
    };
    const valueOf = (name: string): bigint => {
      if (++depthGuard.n > 50) fail('recursion');
      const st = this.lookup(name);
      if (st === undefined) return 0n;
      const text = st.kind === 'value' ? st.value : st.kind === 'array' ? (st.items[0] ?? '') : fail(`${name} is not known before run time`);
      if (text.trim() === '') return 0n;
      const v = this.arith(text, line);
      return v === null ? fail(`${name} is not a number`) : BigInt(v);
    };
    const primary = (): bigint => {
      const t = tokens[i++];
      if (t === undefined) return fail('unexpected end');
      if (t === '(') {
        const v = expr0();
        if (tokens[i++] !== ')') fail('missing )');
        return v;
      }
      if (t === '-') return -primary();
      if (t === '+') return primary();
      if (/^0[xX]/.test(t)) return BigInt(t);
      if (/^0[0-7]+$/.test(t)) return BigInt('0o' + t.slice(1));
      if (/^[0-9]+$/.test(t)) return BigInt(t);
      if (/^[A-Za-z_]/.test(t)) return valueOf(t);
      return fail(`unexpected '${t}'`);
    };
    const power = (): bigint => {
      const base = primary();
      if (tokens[i] === '**') {
        i++;
        const e = power();
        if (e < 0n) fail('negative exponent');
        return base ** e;
      }
      return base;
    };
    const term = (): bigint => {
      let v = power();
      while (tokens[i] === '*' || tokens[i] === '/' || tokens[i] === '%') {
        const op = tokens[i++];
        const r = power();
        if (op !== '*' && r === 0n) fail('division by 0');
        v = op === '*' ? v * r : op === '/' ? v / r : v % r;
      }
      return v;
    };
    const expr0 = (): bigint => {
      let v = term();
      while (tokens[i] === '+' || tokens[i] === '-') {
        const op = tokens[i++];
        const r = term();
        v = op === '+' ? v + r : v - r;
      }
      return v;
    };
    try {
      if (tokens.length === 0) return '0';
      const v = expr0();
      if (i !== tokens.length) fail(`unexpected '${tokens[i]}'`);
      return v.toString();
    } catch (e) {
      this.warn(`line ${line}: cannot evaluate $((${exprIn})): ${(e as Error).message}; kept as written`);
      return null;
    }
  }

  // ---- assignments

  assign(name: string, append: boolean, value: Part[], line: number, mode: 'assign' | 'export', rawValue: string): void {
    if (value.length === 1 && value[0].t === 'array') {
      const items = this.expandWords(value[0].items, `the array ${name}`);
      this.vars.set(name, { kind: 'array', items });
      return;
    }
    if (value.length === 1 && value[0].t === 'angle') {
      const text = value[0].s;
      this.warn(
        `line ${line}: value ${text} is not valid bash: it parses as redirections and bash aborts the script with a syntax error here (rc=2, nothing is launched); treated as a placeholder`,
      );
      this.vars.set(name, { kind: 'placeholder', original: text });
      return;
    }
    const chunks = this.expandParts(value, mode, line);
    const unresolved = chunks.find((c) => c.unresolved);
    if (unresolved) {
      this.vars.set(name, { kind: 'dynamic', original: rawValue, reason: `line ${line}: ${unresolved.unresolved}` });
      return;
    }
    let text = chunks.map((c) => c.text).join('');
    if (append) {
      const prev = this.vars.get(name);
      if (prev?.kind === 'value') text = prev.value + text;
      else if (prev?.kind === 'placeholder' || prev?.kind === 'dynamic') {
        this.vars.set(name, { kind: 'dynamic', original: prev.original + text, reason: `line ${line}: appended to a value not known before run time` });
        return;
      }
    }
    if (looksLikePlaceholder(text)) this.vars.set(name, { kind: 'placeholder', original: text });
    else this.vars.set(name, { kind: 'value', value: text });
  }

  private assignWord(w: Word, mode: 'assign' | 'export'): string | null {
    const a = splitAssignment(w);
    if (!a) return null;
    const rawValue = this.src.slice(w.start, w.end).replace(/^[A-Za-z_][A-Za-z0-9_]*\+?=/, '');
    this.assign(a.name, a.append, a.value, w.line, mode, rawValue);
    return a.name;
  }

  private exportName(name: string): void {
    if (!this.exported.includes(name)) this.exported.push(name);
  }

  currentEnv(): Record<string, string> {
    const env: Record<string, string> = {};
    for (const name of this.exported) {
      const st = this.vars.get(name);
      if (st === undefined) continue;
      env[name] = st.kind === 'value' ? st.value : st.kind === 'array' ? (st.items[0] ?? '') : `\${${name}}`;
    }
    return env;
  }

  // ---- commands

  private execPipeline(commands: { words: Word[]; redirs: Redir[]; start: number; end: number; line: number }[]): void {
    const [head, ...rest] = commands;
    const launched = this.execSimple(head);
    if (!launched) {
      if (rest.length) for (const c of rest) this.otherCommands.push(this.raw(c.start, c.end));
      return;
    }
    for (const c of rest) {
      const fields = this.expandWords(c.words, 'a command after the launch');
      const name = fields[0] ?? '';
      if (name === 'tee') {
        const target = fields.slice(1).find((f) => !f.startsWith('-'));
        if (target !== undefined && launched.logFile === null) launched.logFile = target;
      } else {
        this.warn(`line ${c.line}: the launch output is piped into '${this.raw(c.start, c.end)}', which is not interpreted`);
      }
    }
  }

  /** Runs one simple command; returns the launch when it is the (first) launch command. */
  private execSimple(cmd: { words: Word[]; redirs: Redir[]; start: number; end: number; line: number }): Launch | null {
    let words = cmd.words;
    const prefix: Word[] = [];
    while (words.length && splitAssignment(words[0])) {
      prefix.push(words[0]);
      words = words.slice(1);
    }
    if (!words.length) {
      for (const w of prefix) this.assignWord(w, 'assign');
      if (cmd.redirs.length && !prefix.length) this.otherCommands.push(this.raw(cmd.start, cmd.end));
      return null;
    }
    let name = wordLiteral(words[0], true);
    // transparent wrappers
    while (name !== null && ['nohup', 'exec', 'time', 'command', 'env'].includes(name)) {
      words = words.slice(1);
      if (name === 'env') {
        while (words.length && (splitAssignment(words[0]) || wordLiteral(words[0])?.startsWith('-'))) {
          if (splitAssignment(words[0])) prefix.push(words[0]);
          words = words.slice(1);
        }
      }
      if (!words.length) return null;
      name = wordLiteral(words[0], true);
    }
    switch (name) {
      case 'export':
      case 'declare':
      case 'typeset':
      case 'local':
      case 'readonly': {
        let exportAll = name === 'export';
        for (const w of words.slice(1)) {
          const opt = wordLiteral(w);
          if (opt !== null && /^[-+][A-Za-z]+$/.test(opt)) {
            if (opt.startsWith('-') && opt.includes('x')) exportAll = true;
            if (opt === '-n' || opt === '+x') exportAll = false;
            continue;
          }
          const assigned = this.assignWord(w, exportAll ? 'export' : 'assign');
          const target = assigned ?? wordLiteral(w, true);
          if (target !== null && exportAll && /^[A-Za-z_][A-Za-z0-9_]*$/.test(target)) this.exportName(target);
        }
        return null;
      }
      case 'unset':
        for (const w of words.slice(1)) {
          const n = wordLiteral(w, true);
          if (n !== null && !n.startsWith('-')) {
            this.vars.delete(n);
            const i = this.exported.indexOf(n);
            if (i >= 0) this.exported.splice(i, 1);
          }
        }
        return null;
      case 'source':
      case '.': {
        const file = words[1] ? this.expandString(words[1]) : '';
        if (file) this.sources.push(file);
        return null;
      }
    }
    // expand the command itself: the launch is recognised from its expanded words
    const first = this.expandWords([words[0]], 'the command name')[0] ?? '';
    if (this.isLaunch(first, words)) {
      const saved = new Map<string, VarState | undefined>();
      const prefixEnv: Record<string, string> = {};
      for (const w of prefix) {
        const a = splitAssignment(w)!;
        saved.set(a.name, this.vars.get(a.name));
        this.assignWord(w, 'export');
        const st = this.vars.get(a.name)!;
        prefixEnv[a.name] = st.kind === 'value' ? st.value : st.kind === 'array' ? (st.items[0] ?? '') : `\${${a.name}}`;
      }
      const argv = this.expandWords(words, 'the launch command');
      for (const [n, st] of saved) {
        if (st === undefined) this.vars.delete(n);
        else this.vars.set(n, st);
      }
      const launch = this.buildLaunch(argv, cmd.line);
      launch.env = { ...this.currentEnv(), ...prefixEnv };
      for (const r of cmd.redirs) {
        if (r.target && (r.op === '>' || r.op === '>>' || r.op === '>|' || r.op === '&>' || r.op === '&>>') && (r.fd === null || r.fd === 1)) {
          if (launch.logFile === null) launch.logFile = this.expandString(r.target);
        }
      }
      if (this.launch) {
        this.warn(
          `line ${cmd.line}: another launch command (${this.raw(cmd.start, cmd.end).slice(0, 80)}…) is not parsed; only the first one (line ${this.launch.line}) is`,
        );
        this.otherCommands.push(this.raw(cmd.start, cmd.end));
        return null;
      }
      this.launch = launch;
      return launch;
    }
    if (first.startsWith('--')) {
      const fields = this.expandWords(words, 'orphaned arguments');
      const grouped = groupArgs(fields).args;
      this.orphanedArgs.push(...grouped);
      this.warn(
        `line ${cmd.line}: a separate command starting with ${first} follows; probably a missing line-continuation backslash on the previous line, so bash does NOT pass these tokens to the launcher: ${fields.join(' ')}`,
      );
      return null;
    }
    if (/[^\x00-\x7F]/.test(first)) this.warn(`line ${cmd.line}: uncommented prose would be executed by bash as a command (${first} ...)`);
    this.otherCommands.push(this.raw(cmd.start, cmd.end));
    return null;
  }

  private isLaunch(first: string, words: Word[]): boolean {
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

  private buildLaunch(argv: string[], line: number): Launch {
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
          this.warn(`launcher option ${opt} has no value`);
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
      else this.warn(`line ${line}: the launch command has no entrypoint script`);
    }
    const { args, positional } = groupArgs(argv.slice(k));
    if (positional.length) this.warn(`line ${line}: arguments before the first flag are not [flag, value] pairs (kept in argv only): ${positional.join(' ')}`);
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
