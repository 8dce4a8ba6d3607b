/**
 * `notify:` in a spec: webhooks told when a pipeline fails, succeeds, waits for nodes longer than a
 * threshold, or has used most of a retry budget. Parsed here; the workflow decides when
 * (workflows/notify.ts) and an activity posts (activities/notify.ts).
 */
import { z } from 'zod';
import { durationSchema, durationToMs } from '../common/duration.ts';

export const NOTIFY_EVENTS = ['failed', 'succeeded', 'waiting-for-nodes', 'retry-budget'] as const;
export type NotifyEventKind = (typeof NOTIFY_EVENTS)[number];

const webhookSchema = z
  .strictObject({
    /** Stored in the workflow's history like the rest of the spec: a URL that holds a token (Slack's do) goes in urlFromEnv. */
    url: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional(),
    /** The name of a variable of the worker's environment holding the URL: it never enters the history. */
    urlFromEnv: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name')
      .optional(),
    /** json: linkflow's event as JSON; slack: `{ "text": … }`, which Slack's and most chat webhooks take. */
    format: z.enum(['json', 'slack']).default('json'),
    events: z
      .array(z.enum(NOTIFY_EVENTS))
      .min(1)
      .default([...NOTIFY_EVENTS]),
  })
  .refine((w) => (w.url === undefined) !== (w.urlFromEnv === undefined), 'give either url or urlFromEnv');

export const notifySchema = z.strictObject({
  webhooks: z.array(webhookSchema).min(1, 'expected at least one webhook'),
  /** A stage that has waited for nodes this long is reported (once per attempt). */
  waitingForNodesAfter: durationSchema.default('30m'),
  /** A stage whose failures have used this share of a retry budget is reported (once per budget). */
  retryBudgetUsed: z.number().gt(0).max(1).default(0.8),
});

export type Webhook = z.infer<typeof webhookSchema>;

/** What the workflow carries (plain data). */
export interface NotifySettings {
  webhooks: Webhook[];
  waitingForNodesAfterMs: number;
  retryBudgetUsed: number;
}

export function notifySettings(spec: z.infer<typeof notifySchema>): NotifySettings {
  return { webhooks: spec.webhooks, waitingForNodesAfterMs: durationToMs(spec.waitingForNodesAfter), retryBudgetUsed: spec.retryBudgetUsed };
}

/** An event as the workflow reports it; its id is what a receiver deduplicates on. */
export interface NotifyEvent {
  id: string;
  kind: NotifyEventKind;
  pipeline: string;
  workflowId: string;
  /** Workflow time, ISO 8601. */
  at: string;
  status: string;
  stage?: string;
  /** One line a person reads. */
  text: string;
  details?: Record<string, unknown>;
}

/** The body a webhook receives. */
export function webhookBody(event: NotifyEvent, format: Webhook['format']): unknown {
  if (format === 'slack') return { text: `[linkflow] ${event.text}` };
  return { ...event, eventId: event.id, source: 'linkflow' };
}
