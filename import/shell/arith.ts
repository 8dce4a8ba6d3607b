/** Shell arithmetic `$(( ))` as the import's interpreter evaluates it, over the script's variables. Runs nothing. */
import type { VarState } from './interpreter.ts';

/** What arithmetic reads of the interpreter: variables, and where it reports what it cannot evaluate. */
export interface ArithScope {
  lookup(name: string): VarState | undefined;
  warn(message: string, key?: string): void;
}

/** Evaluates `$(( ))` contents: + - * / % ** and parentheses over ints and variables; null when it cannot. */
export function evaluateArith(exprIn: string, line: number, scope: ArithScope): string | null {
  // $NAME and ${NAME} are substituted as text first, as bash does
  let failed = false;
  const expr = exprIn.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_m, a: string | undefined, b: string | undefined) => {
    const name = (a ?? b)!;
    const st = scope.lookup(name);
    if (st === undefined) {
      scope.warn(`variable $${name} is used but never set in the script; bash expands it to nothing`, `unset ${name}`);
      return '';
    }
    if (st.kind === 'value') return st.value;
    if (st.kind === 'array') return st.items[0] ?? '';
    failed = true;
    return '';
  });
  if (failed || /\$/.test(expr)) {
    scope.warn(`line ${line}: $((${exprIn})) depends on a value not known before run time; kept as written`);
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
    const st = scope.lookup(name);
    if (st === undefined) return 0n;
    const text = st.kind === 'value' ? st.value : st.kind === 'array' ? (st.items[0] ?? '') : fail(`${name} is not known before run time`);
    if (text.trim() === '') return 0n;
    const v = evaluateArith(text, line, scope);
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
    scope.warn(`line ${line}: cannot evaluate $((${exprIn})): ${(e as Error).message}; kept as written`);
    return null;
  }
}
