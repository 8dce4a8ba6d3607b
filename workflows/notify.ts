/**
 * Notifications, workflow side: which event, once. Each event has an id the receiver can deduplicate
 * on, and the workflow records it before calling, so replays and continued runs never send it again.
 * A webhook that stays down after a few tries is recorded in the state and the pipeline goes on.
 */
import { condition, isCancellation, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type * as activities from '../activities/index.ts';
import type { NotifyEvent, NotifyEventKind, NotifySettings } from '../spec/notify.ts';
import type { PipelineState, StageState } from '../contracts/run-state.ts';

const { notifyWebhook } = proxyActivities<typeof activities>({
  startToCloseTimeout: '30s',
  // Bounded: a dead receiver costs the pipeline under a minute, never its outcome.
  retry: { maximumAttempts: 3, initialInterval: '2s', backoffCoefficient: 2 },
});

/** The event's id: the pipeline's workflow, the first run of this execution (a rerun is a new one), what happened. */
export function eventId(...parts: (string | number)[]): string {
  const info = workflowInfo();
  return [info.workflowId, info.firstExecutionRunId, ...parts].join('/');
}

export async function notify(
  settings: NotifySettings | undefined,
  state: PipelineState,
  kind: NotifyEventKind,
  id: string,
  text: string,
  extra: { stage?: string; details?: Record<string, unknown> } = {},
): Promise<void> {
  if (!settings) return;
  const hooks = settings.webhooks.map((w, i) => ({ w, i })).filter(({ w }) => w.events.includes(kind));
  if (hooks.length === 0 || state.notified?.includes(id)) return;
  state.notified = [...(state.notified ?? []), id];
  const event: NotifyEvent = {
    id,
    kind,
    pipeline: state.pipeline,
    workflowId: workflowInfo().workflowId,
    at: new Date().toISOString(),
    status: state.status,
    text,
    ...extra,
  };
  await Promise.all(
    hooks.map(async ({ w, i }) => {
      try {
        await notifyWebhook({ webhook: w, event });
        record(state, { eventId: id, kind, webhook: i, delivered: true });
      } catch (err) {
        if (isCancellation(err)) throw err;
        record(state, { eventId: id, kind, webhook: i, delivered: false, error: causeMessage(err) });
      }
    }),
  );
}

function record(state: PipelineState, r: NonNullable<PipelineState['notifications']>[number]): void {
  state.notifications = [...(state.notifications ?? []), r];
}

function causeMessage(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && e.cause instanceof Error) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}

/**
 * Reports a stage that has been waiting for nodes longer than the threshold, once per attempt. It
 * reads only StageState.status ('waiting-for-nodes', set by the gang's placement), so it does not
 * depend on how placement waits. Runs beside the pipeline for the whole run.
 */
export async function watchNodeWaits(settings: NotifySettings | undefined, state: PipelineState): Promise<void> {
  if (!settings?.webhooks.some((w) => w.events.includes('waiting-for-nodes'))) return;
  const waiting = () => state.stages.find((s) => s.status === 'waiting-for-nodes');
  for (;;) {
    await condition(() => waiting() !== undefined);
    const s: StageState = waiting()!;
    const attempt = s.attempts.length + 1;
    const stillWaiting = () => s.status === 'waiting-for-nodes' && s.attempts.length + 1 === attempt;
    const over = await condition(() => !stillWaiting(), settings.waitingForNodesAfterMs);
    if (over) continue;
    const minutes = Math.round(settings.waitingForNodesAfterMs / 60_000);
    await notify(
      settings,
      state,
      'waiting-for-nodes',
      eventId('stage', s.name, 'attempt', attempt, 'waiting-for-nodes'),
      `${state.pipeline}: stage ${s.name} has waited for nodes for ${minutes >= 1 ? `${minutes} min` : `${settings.waitingForNodesAfterMs / 1000} s`}: ${s.note ?? ''}`.trim(),
      { stage: s.name, details: { attempt, note: s.note } },
    );
    await condition(() => !stillWaiting());
  }
}
