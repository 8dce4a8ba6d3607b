/**
 * A node's place in its pool: the worker renews it every few seconds (starting the pool's allocator
 * if it is not running yet) and leaves when it shuts down. A node that stops renewing (its worker or
 * machine died) leaves by itself after the pool's node timeout.
 */
import { Client, Connection } from '@temporalio/client';
import { nodeLeaveSignal, nodeRenewSignal, poolQuery, poolWorkflowId, poolWorkflowType, type NodeRenewal, type PoolWorkflow } from '../contracts/pool.ts';
import { setPoolNodesSource, type PoolNodeCount } from '../activities/metrics.ts';
import { NODE_STATES } from '../pool/view.ts';
import { connectionOptions, poolSettings, type LinkflowConfig } from '../temporal.config.ts';
import { durationToMs } from '../common/duration.ts';
import { runningCount } from '../executors/nodes/io/process-group.ts';
import type { NodeIdentity } from '../node/identity.ts';

export interface Membership {
  /** Leaves the pool (best effort: the node timeout covers a leave that does not arrive). */
  leave(reason: string): Promise<void>;
}

/** How often a worker that serves metrics reads its pool's nodes by state from the allocator. */
const POOL_METRICS_EVERY_MS = 15_000;

export async function joinPool(
  config: LinkflowConfig,
  pool: string,
  node: NodeIdentity,
  options: { reportPool?: boolean; log?: (msg: string) => void; serving?: () => boolean } = {},
): Promise<Membership> {
  const log = options.log ?? console.warn;
  const connection = await Connection.connect(connectionOptions(config));
  const client = new Client({ connection, namespace: config.namespace });
  const settings = poolSettings(config);
  const worker = `${process.pid}@${Date.now()}`;
  const renewal = (): NodeRenewal => ({ name: node.node, address: node.address, running: runningCount(), settings, worker });
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
    // Shutting down (a drain waits out running attempts): leave now, so nothing new is granted meanwhile.
    if (options.serving && !options.serving()) {
      void membership.leave('its worker is shutting down');
      return;
    }
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
  const poolTimer = options.reportPool ? reportPoolNodes(client, pool) : undefined;
  let left = false;
  const membership: Membership = {
    async leave(reason) {
      if (left) return;
      left = true;
      clearInterval(timer);
      if (poolTimer) clearInterval(poolTimer);
      try {
        await client.workflow.getHandle(poolWorkflowId(pool)).signal(nodeLeaveSignal, { name: node.node, reason });
      } catch {
        // The pool notices by the node timeout.
      } finally {
        await connection.close();
      }
    },
  };
  return membership;
}

/** linkflow_pool_nodes: the pool's nodes by state as its allocator sees them (every reporting worker of a pool reports the same). */
function reportPoolNodes(client: Client, pool: string): NodeJS.Timeout {
  let counts: PoolNodeCount[] = [];
  setPoolNodesSource(() => counts);
  const read = () => {
    client.workflow
      .getHandle(poolWorkflowId(pool))
      .query(poolQuery)
      .then((view) => {
        const byState = new Map<string, number>(NODE_STATES.map((s) => [s, 0]));
        for (const n of view.nodes) byState.set(n.state, (byState.get(n.state) ?? 0) + 1);
        counts = [...byState].map(([state, count]) => ({ pool, state, count }));
      })
      .catch(() => undefined);
  };
  read();
  const timer = setInterval(read, POOL_METRICS_EVERY_MS);
  timer.unref();
  return timer;
}
