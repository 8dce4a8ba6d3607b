/** Which node this worker is: its name in the pool and attempt records, and the address its peers reach it at. */
import os from 'node:os';
import type { NodeIdentity } from '../node/identity.ts';

let thisNode: NodeIdentity | undefined;

/** Called once by the worker. */
export function configureNode(node: NodeIdentity): void {
  thisNode = node;
}

/** The name of this node in attempt records: its --node name, else the host name. */
export function nodeName(): string {
  return thisNode?.node ?? os.hostname();
}

export function thisNodeAddress(): string {
  return thisNode?.address ?? '127.0.0.1';
}
