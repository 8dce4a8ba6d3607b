/** Live progress of a running pipeline, polled once a second until it closes. */
import type { WorkflowHandle } from '@temporalio/client';
import { liveLine } from './progress.ts';
import { snapshot, type Snapshot } from '../client/pipeline.ts';

export async function watchPipeline(
  handle: WorkflowHandle,
  options: { quiet?: boolean; intervalMs?: number; print?: (line: string) => void } = {},
): Promise<Snapshot> {
  const print = options.print ?? ((line: string) => console.log(line));
  let last = '';
  let lastPrintedAt = 0;
  for (;;) {
    const snap = await snapshot(handle);
    if (snap.workflowStatus !== 'RUNNING') return snap;
    const line = liveLine(snap);
    // Print when something changed, but not more than every 2 s for iteration ticks alone.
    const statusPart = line?.split(' | iteration')[0];
    const lastStatusPart = last.split(' | iteration')[0];
    if (!options.quiet && line && line !== last && (statusPart !== lastStatusPart || Date.now() - lastPrintedAt > 2000)) {
      print(line);
      last = line;
      lastPrintedAt = Date.now();
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 1000));
  }
}
