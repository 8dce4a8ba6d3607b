/** `linkflow nodes`: every node of a pool with its state, the queue of waiting attempts, and the operator's actions. */
import type { Command } from 'commander';
import { ExitError } from '../errors.ts';
import type { NodeAction } from '../pool/allocator.ts';
import type { NodeView, PoolView } from '../pool/view.ts';

const ACTIONS: NodeAction[] = ['drain', 'undrain', 'release'];

export function registerNodesCommand(program: Command): void {
  program
    .command('nodes [action] [node]')
    .description("the pool's nodes and queue; `nodes drain|undrain|release NAME` acts on one node")
    .option('--pool <taskQueue>', 'the pool (default: the configured task queue)')
    .option('--json', 'print JSON')
    .action(async (action: string | undefined, node: string | undefined, opts: { pool?: string; json?: boolean }) => {
      const [{ actOnNode, NoPoolError, poolView }, { connectClient }, { loadConfig }] = await Promise.all([
        import('../client/pool.ts'),
        import('../client/connect.ts'),
        import('../temporal.config.ts'),
      ]);
      const config = loadConfig();
      const pool = opts.pool ?? config.taskQueue;
      if (action !== undefined && !ACTIONS.includes(action as NodeAction)) throw new ExitError(`unknown action ${action}: expected ${ACTIONS.join(', ')}`, 2);
      if (action !== undefined && node === undefined) throw new ExitError(`linkflow nodes ${action} needs the node's name`, 2);
      const client = await connectClient(config);
      try {
        if (action) console.log(await actOnNode(client, pool, action as NodeAction, node!));
        else {
          const view = await poolView(client, pool);
          console.log(opts.json ? JSON.stringify(view) : poolText(view));
        }
      } catch (err) {
        throw new ExitError((err as Error).message, err instanceof NoPoolError ? 1 : 2);
      } finally {
        await client.connection.close();
      }
    });
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

function nodeLine(n: NodeView, now: number): string {
  const what =
    n.state === 'running' && n.holder
      ? `${n.holder.pipeline}/${n.holder.stage} attempt ${n.holder.attempt}, node rank ${n.holder.nodeRank} of ${n.holder.nodes}, for ${ago(now - n.holder.since)} (${n.holder.workflowId})`
      : n.state === 'quarantined' && n.quarantine
        ? `until ${new Date(n.quarantine.until).toISOString()}: ${n.quarantine.reason}`
        : n.state === 'busy'
          ? 'runs a command no grant knows of'
          : '';
  const flags = n.drained && n.state !== 'drained' ? ' [drained]' : '';
  return `  ${n.name.padEnd(16)} ${n.state.padEnd(11)} ${n.address.padEnd(15)} seen ${ago(now - n.lastSeen)} ago${flags}${what ? `  ${what}` : ''}`;
}

export function poolText(view: PoolView): string {
  const lines = [`pool ${view.pool}: ${view.nodes.length} node${view.nodes.length === 1 ? '' : 's'}, ${view.queue.length} waiting`];
  lines.push(...view.nodes.map((n) => nodeLine(n, view.at)));
  if (view.queue.length) {
    lines.push('queue:');
    for (const q of view.queue) {
      lines.push(
        `  ${q.position}. ${q.holder.pipeline}/${q.holder.stage} attempt ${q.holder.attempt}, waiting ${ago(view.at - q.requestedAt)} for ${q.waitingFor}`,
      );
    }
  }
  return lines.join('\n');
}
