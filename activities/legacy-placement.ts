/**
 * How gangs found nodes before the pool's allocator: list the pool's pollers, probe each node.
 * Kept only for pipelines started before it (their histories take this path, see
 * workflows/legacy-placement.ts); remove once none of them runs.
 */
import { Context } from '@temporalio/activity';
import proto from '@temporalio/proto';
import { runningCount } from '../executors/nodes/io/process-group.ts';
import { getFreePort } from '../node/free-port.ts';
import { nodeName, thisNodeAddress } from './node.ts';

export interface NodeInfo {
  node: string;
  address: string;
  running: number;
  port?: number;
}

export async function nodeInfo(input: { reservePort?: boolean }): Promise<NodeInfo> {
  const address = thisNodeAddress();
  const port = input.reservePort ? await getFreePort(address) : undefined;
  return { node: nodeName(), address, running: runningCount(), port };
}

/** The nodes whose workers poll the pool now (their identities end in ` node=NAME`). */
export async function poolNodes(input: { pool: string }): Promise<string[]> {
  const client = Context.current().client;
  const response = await client.workflowService.describeTaskQueue({
    namespace: client.options.namespace,
    taskQueue: { name: input.pool, kind: proto.temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
  });
  const nodes = (response.pollers ?? []).map((p) => /\snode=(\S+)$/.exec(p.identity ?? '')?.[1]).filter((n): n is string => n !== undefined);
  return [...new Set(nodes)].sort();
}
