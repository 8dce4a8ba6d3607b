/** Where in a parsed file a problem is, from zod's issue path: stages[2].trainIters, or (spec) for the whole. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || '(spec)';
}
