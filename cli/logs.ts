/** `linkflow logs`: the bytes of the log on standard output, notes between attempts on standard error. */
import { connectClient } from '../client/connect.ts';
import { LogsError, streamLogs } from '../client/logs.ts';
import { ExitError } from '../errors.ts';
import { loadConfig } from '../temporal.config.ts';

/** Resolves when standard output took the bytes (at once, or after it drained): memory stays flat whatever the log's size. */
function writeOut(data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (process.stdout.write(data, (err) => err && reject(err))) resolve();
    else process.stdout.once('drain', resolve);
  });
}

export async function logsCommand(id: string, opts: { stage?: string; attempt?: string; follow?: boolean; viaNode?: boolean }): Promise<void> {
  const attempt = opts.attempt === undefined ? undefined : Number(opts.attempt);
  if (attempt !== undefined && (!Number.isInteger(attempt) || attempt < 1))
    throw new ExitError(`--attempt: expected a positive integer, got ${opts.attempt}`, 2);
  const client = await connectClient(loadConfig());
  try {
    await streamLogs(
      client,
      client.workflow.getHandle(id),
      { stage: opts.stage, attempt, follow: opts.follow, viaNode: opts.viaNode },
      {
        write: writeOut,
        note: (m) => console.error(m),
      },
    );
  } catch (e) {
    if (e instanceof LogsError) throw new ExitError(`${id}: ${e.message}`, 1);
    throw e;
  } finally {
    await client.connection.close();
  }
}
