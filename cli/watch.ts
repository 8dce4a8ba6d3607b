/** Live progress of a running pipeline, polled once a second until it closes or the watcher detaches. */
import type { WorkflowHandle } from '@temporalio/client';
import { liveLine } from './progress.ts';
import { snapshot, type Snapshot } from '../client/pipeline.ts';

/** The pipeline's final snapshot, or undefined when `signal` aborted first (the pipeline runs on). */
export async function watchPipeline(
  handle: WorkflowHandle,
  options: { quiet?: boolean; intervalMs?: number; print?: (line: string) => void; signal?: AbortSignal } = {},
): Promise<Snapshot | undefined> {
  const print = options.print ?? ((line: string) => console.log(line));
  let last = '';
  let lastPrintedAt = 0;
  while (!options.signal?.aborted) {
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
    await pause(options.intervalMs ?? 1000, options.signal);
  }
  return undefined;
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * An AbortSignal that Ctrl-C (SIGINT) aborts, for as long as `body` runs: watching a pipeline is only
 * a view of it, so Ctrl-C detaches the view and leaves the pipeline running.
 */
export async function untilCtrlC<T>(body: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.on('SIGINT', onSigint);
  try {
    return await body(controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
}

/** What Ctrl-C during a watch prints: the pipeline goes on, and how to see or stop it. */
export function detachedText(workflowId: string): string {
  return [
    `detached: pipeline ${workflowId} keeps running (Ctrl-C stops only this view).`,
    `  watch it again:         linkflow watch ${workflowId}`,
    `  its state:              linkflow status ${workflowId}`,
    `  checkpoint and stop it: linkflow stop ${workflowId}   (run the spec again to resume)`,
    `  cancel it:              linkflow cancel ${workflowId}`,
  ].join('\n');
}
