/**
 * One webhook call for one notification event. The event id goes in the body and as the
 * Idempotency-Key header, so a receiver that sees a retried call can drop it. A failure throws: the
 * workflow's retry policy bounds the retries, and the workflow records what is left of it.
 */
import { ApplicationFailure } from '@temporalio/common';
import { webhookBody, type NotifyEvent, type Webhook } from '../spec/notify.ts';

const TIMEOUT_MS = 10_000;

export async function notifyWebhook({ webhook, event }: { webhook: Webhook; event: NotifyEvent }): Promise<void> {
  const url = webhookUrl(webhook);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': event.id, 'user-agent': 'linkflow' },
      body: JSON.stringify(webhookBody(event, webhook.format)),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (e) {
    // The URL may hold a token: only its origin goes into the message (and so into the history).
    throw new Error(
      `webhook ${new URL(url).origin} did not answer: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`,
    );
  }
  await response.body?.cancel();
  if (!response.ok) {
    // 4xx (but 408 and 429) will not get better with a retry.
    const permanent = response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429;
    throw ApplicationFailure.create({ message: `webhook ${new URL(url).origin} answered ${response.status}`, nonRetryable: permanent });
  }
}

function webhookUrl(webhook: Webhook): string {
  if (webhook.url) return webhook.url;
  const name = webhook.urlFromEnv!;
  const value = process.env[name];
  if (!value) throw ApplicationFailure.create({ message: `the worker has no ${name} (the webhook's urlFromEnv)`, nonRetryable: true });
  return value;
}
