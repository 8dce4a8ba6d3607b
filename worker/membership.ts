/**
 * A node's place in its pool: the worker renews it every few seconds (starting the pool's allocator
 * if it is not running yet) and leaves when it shuts down. A node that stops renewing (its worker or
 * machine died) leaves by itself after the pool's node timeout.
 */
import { Client, Connection } from '@temporalio/client';
import { nodeLeaveSignal, nodeRenewSignal, poolWorkflowId, poolWorkflowType, type NodeRenewal, type PoolWorkflow } from '../contracts/pool.ts';
import { connectionOptions, poolSettings, type LinkflowConfig } from '../temporal.config.ts';
import { durationToMs } from '../common/duration.ts';
import { runningCount } from '../node/process-group.ts';
import type { NodeIdentity } from '../node/identity.ts';

export interface Membership {
  /** Leaves the pool (best effort: the node timeout covers a leave that does not arrive). */
  leave(reason: string): Promise<void>;
}

export async function joinPool(config: LinkflowConfig, pool: string, node: NodeIdentity, log: (msg: string) => void = console.warn): Promise<Membership> {
  const connection = await Connection.connect(connectionOptions(config));
  const client = new Client({ connection, namespace: config.namespace });
  const settings = poolSettings(config);
  const renewal = (): NodeRenewal => ({ name: node.node, address: node.address, running: runningCount(), settings });
  const renew = () =>
    client.workflow.signalWithStart<PoolWorkflow, [NodeRenewal]>(poolWorkflowType, {
      workflowId: poolWorkflowId(pool),
      taskQueue: pool,
      args: [{ pool, settings }],
      signal: nodeRenewSignal,
      signalArgs: [renewal()],
    });
  await renew();
  let failing = false;
  let inFlight = false;
  const timer = setInterval(() => {
    if (inFlight) return;
    inFlight = true;
    renew()
      .then(() => {
        if (failing) log(`node ${node.node}: renewing its place in pool ${pool} works again`);
        failing = false;
      })
      .catch((err: unknown) => {
        // Said once per streak: a node that cannot renew leaves the pool after its timeout, and its attempts with it.
        if (!failing) log(`node ${node.node}: cannot renew its place in pool ${pool}: ${(err as Error).message.split('\n')[0]}`);
        failing = true;
      })
      .finally(() => {
        inFlight = false;
      });
  }, durationToMs(config.pool.renewInterval));
  timer.unref();
  let left = false;
  return {
    async leave(reason) {
      if (left) return;
      left = true;
      clearInterval(timer);
      try {
        await client.workflow.getHandle(poolWorkflowId(pool)).signal(nodeLeaveSignal, { name: node.node, reason });
      } catch {
        // The pool notices by the node timeout.
      } finally {
        await connection.close();
      }
    },
  };
}
