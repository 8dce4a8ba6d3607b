/** The tokens of the shell subset `linkflow import` reads (see ../shell-script.ts): words made of parts, operators, redirections, comments. */

export type Part =
  | { t: 'lit'; s: string; q: boolean }
  | { t: 'var'; name: string; q: boolean; raw: string; index?: string; op?: string; word?: Part[]; len?: boolean }
  | { t: 'arith'; expr: string; q: boolean; raw: string }
  | { t: 'cmd'; raw: string; q: boolean }
  | { t: 'bad'; raw: string; q: boolean; why: string }
  | { t: 'array'; items: Word[]; raw: string }
  | { t: 'angle'; s: string };

export interface Word {
  k: 'word';
  parts: Part[];
  line: number;
  start: number;
  end: number;
}
export interface Op {
  k: 'op';
  op: string;
  line: number;
  start: number;
  end: number;
}
export interface Redir {
  k: 'redir';
  op: string;
  fd: number | null;
  target: Word | null;
  dup: string | null;
  line: number;
  start: number;
  end: number;
}
export type Token = Word | Op | Redir;

export interface Comment {
  line: number;
  text: string;
}

export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*/;
export const WORD_BREAK = new Set([' ', '\t', '\n', ';', '&', '|', '(', ')', '<', '>']);

export class ShellSyntaxError extends Error {}
