/** A client of the configured Temporal server, or an error that says how to start one. */
import { Client, Connection } from '@temporalio/client';
import { connectionOptions, type LinkflowConfig } from '../temporal.config.ts';
import { ExitError } from '../errors.ts';

/** No server answered: the command fails (exit 1) with how to start one. */
export class ServerUnreachableError extends ExitError {
  constructor(message: string) {
    super(message, 1);
  }
}

export async function connectClient(config: LinkflowConfig, timeoutMs = 5000): Promise<Client> {
  let connection: Connection;
  try {
    connection = await Connection.connect({ ...connectionOptions(config), connectTimeout: timeoutMs });
    await connection.workflowService.getSystemInfo({});
  } catch (e) {
    throw new ServerUnreachableError(
      `no Temporal server reachable at ${config.address} (${(e as Error).message.split('\n')[0]}).\n` +
        'Start one with `npx linkflow dev` (embedded dev server + worker), or point TEMPORAL_ADDRESS at your cluster.',
    );
  }
  return new Client({ connection, namespace: config.namespace });
}
