/**
 * Whether the cluster knows linkflow's search attributes, and the commands that register them.
 * A pipeline started on a cluster without them still runs (without them): upserting an unregistered
 * attribute would fail its workflow tasks.
 */
import type { Client } from '@temporalio/client';
import { linkflowSearchAttributes, searchAttributeTypes } from '../contracts/search-attributes.ts';

/** The linkflow search attributes the namespace lacks (all of them when the server cannot tell). */
export async function missingSearchAttributes(client: Client): Promise<string[]> {
  const wanted = linkflowSearchAttributes.map((k) => k.name);
  try {
    const { customAttributes } = await client.connection.operatorService.listSearchAttributes({ namespace: client.options.namespace });
    return wanted.filter((name) => !customAttributes || !(name in customAttributes));
  } catch {
    return wanted; // e.g. Temporal Cloud without operator permission: run without them rather than fail
  }
}

/** `temporal operator search-attribute create` commands registering them on a production cluster. */
export function registerCommands(namespace: string, names = linkflowSearchAttributes.map((k) => k.name)): string[] {
  const types = searchAttributeTypes();
  return names.map((name) => `temporal operator search-attribute create --namespace ${namespace} --name ${name} --type ${types[name]}`);
}
