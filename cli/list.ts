/** `linkflow list`: a table of pipelines, or JSON. */
import type { ListedPipeline } from '../client/list.ts';

export function listTable(rows: ListedPipeline[]): string {
  if (rows.length === 0) return 'no pipelines match';
  const header = ['WORKFLOW ID', 'STATUS', 'MODEL', 'STAGE', 'LAST FAILURE', 'STARTED'];
  const cells = rows.map((r) => [r.workflowId, r.status, r.model ?? '-', r.stage ?? '-', r.failureClass ?? '-', r.startedAt.replace(/\.\d+Z$/, 'Z')]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  return [header, ...cells]
    .map((row) =>
      row
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
