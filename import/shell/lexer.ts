/** The lexer of the shell subset `linkflow import` reads: source text → words, operators, redirections and comments. Runs nothing. */
import { NAME_RE, ShellSyntaxError, WORD_BREAK, type Comment, type Part, type Token, type Word } from './tokens.ts';

export class Lexer {
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
export function wordLiteral(w: Word, allowQuoted = false): string | null {
  let out = '';
  for (const p of w.parts) {
    if (p.t !== 'lit' || (p.q && !allowQuoted)) return null;
    out += p.s;
  }
  return out;
}

/** `NAME=` / `NAME+=` when the word starts an assignment (the prefix must be unquoted). */
export function assignmentPrefix(parts: Part[]): string | null {
  const first = parts[0];
  if (!first || first.t !== 'lit' || first.q) return null;
  const m = /^[A-Za-z_][A-Za-z0-9_]*\+?=/.exec(first.s);
  return m ? m[0] : null;
}

export function splitAssignment(w: Word): { name: string; append: boolean; value: Part[] } | null {
  const prefix = assignmentPrefix(w.parts);
  if (prefix === null) return null;
  const first = w.parts[0] as { t: 'lit'; s: string; q: boolean };
  const rest = first.s.slice(prefix.length);
  const value: Part[] = rest ? [{ t: 'lit', s: rest, q: false }, ...w.parts.slice(1)] : w.parts.slice(1);
  const append = prefix.endsWith('+=');
  return { name: prefix.slice(0, append ? -2 : -1), append, value };
}
