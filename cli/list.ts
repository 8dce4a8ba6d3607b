/** `linkflow list`: a table of pipelines (and benchmark cases, marked as such), or JSON. */
import type { ListedPipeline } from '../client/list.ts';
import { ExitError } from '../errors.ts';

export function listTable(rows: ListedPipeline[]): string {
  if (rows.length === 0) return 'no pipelines match';
  const header = ['WORKFLOW ID', 'KIND', 'STATUS', 'MODEL', 'STAGE', 'LAST FAILURE', 'STARTED'];
  const cells = rows.map((r) => [r.workflowId, r.kind, r.status, r.model ?? '-', r.stage ?? '-', r.failureClass ?? '-', r.startedAt.replace(/\.\d+Z$/, 'Z')]);
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

export async function listCommand(opts: { status?: string; model?: string; since?: string; json?: boolean }): Promise<void> {
  const [{ listPipelines, listQuery, ListFilterError }, { connectClient }, { loadConfig }] = await Promise.all([
    import('../client/list.ts'),
    import('../client/connect.ts'),
    import('../temporal.config.ts'),
  ]);
  let query: string;
  try {
    query = listQuery(opts);
  } catch (e) {
    if (e instanceof ListFilterError) throw new ExitError(e.message, 2);
    throw e;
  }
  const rows = await listPipelines(await connectClient(loadConfig()), query);
  console.log(opts.json ? JSON.stringify(rows) : listTable(rows));
}
