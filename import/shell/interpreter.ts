/** The interpreter of the shell subset `linkflow import` reads: variables, expansions, word splitting, the launch command. Runs nothing. */
import type { Arg } from '../../frameworks/modellink/args.ts';
import { evaluateArith } from './arith.ts';
import { buildLaunch, groupArgs, isLaunch, type Launch } from './launch-command.ts';
import { splitAssignment, wordLiteral } from './lexer.ts';
import type { Part, Redir, Token, Word } from './tokens.ts';

export type VarState =
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

const COMPOUND_CLOSER: Record<string, string> = { for: 'done', while: 'done', until: 'done', select: 'done', if: 'fi', case: 'esac', '{': '}' };
const SEPARATORS = new Set(['\n', ';', '&', ';;']);

export class Interpreter {
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

  lookup(name: string): VarState | undefined {
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
        const idx = evaluateArith(p.index, line, this);
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
          const v = evaluateArith(p.expr, line, this);
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
    if (isLaunch(first, words)) {
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
      const launch = buildLaunch(argv, cmd.line, (m) => this.warn(m));
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
}
