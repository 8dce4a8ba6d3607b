/**
 * What a node tells the workflow that places a gang: its name, the address its peers reach it at,
 * whether it is busy, and (for rank 0) a free port for torchrun's rendezvous. The pool's pollers,
 * read from Temporal, say which nodes are up.
 */
import { Context } from '@temporalio/activity';
import proto from '@temporalio/proto';
import os from 'node:os';
import { nodeOfIdentity } from '../modellink/gang.ts';
import { runningCount } from '../node/process-group.ts';
import { getFreePort } from '../node/free-port.ts';
import type { NodeIdentity } from '../node/identity.ts';

let thisNode: NodeIdentity | undefined;

/** Called once by a worker started with --node. */
export function configureNode(node: NodeIdentity): void {
  thisNode = node;
}

/** The name of this node in attempt records: its --node name, else the host name. */
export function nodeName(): string {
  return thisNode?.node ?? os.hostname();
}

export interface NodeInfo extends NodeIdentity {
  /** Commands this worker is running now: a busy node is not free for a new gang. */
  running: number;
  port?: number;
}

export async function nodeInfo(input: { reservePort?: boolean }): Promise<NodeInfo> {
  if (!thisNode) throw new Error('this worker was started without --node; it cannot take a node rank');
  const port = input.reservePort ? await getFreePort(thisNode.address) : undefined;
  return { ...thisNode, running: runningCount(), port };
}

/** Identities of the workers that poll a task queue for activities now (Temporal lists them). */
export async function activityPollers(taskQueue: string): Promise<string[]> {
  const client = Context.current().client;
  const response = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: taskQueue, kind: proto.temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  return (response.pollers ?? []).map((p) => p.identity ?? '');
}

/** The nodes whose workers poll the pool now (their identities carry the node name). */
export async function poolNodes(input: { pool: string }): Promise<string[]> {
  const nodes = (await activityPollers(input.pool)).map(nodeOfIdentity).filter((n): n is string => n !== undefined);
  return [...new Set(nodes)].sort();
}
