/** The test harness's Slurm cluster (testkit/slurm.ts): it comes up, runs a batch job on two nodes, and leaves nothing behind. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { slurmInstalled, startSlurmCluster } from '../testkit/slurm.ts';
import { processesMentioning, until } from '../testkit/wait.ts';

// Outside CI a machine without Debian's Slurm skips these; in CI (.ci/run installs it) a missing Slurm fails them.
describe.skipIf(!slurmInstalled() && !process.env.CI)('a Slurm cluster on this machine', () => {
  it('runs a two-node batch job from a script file and stops without a trace', async () => {
    const cluster = await startSlurmCluster({ nodes: 3 });
    try {
      const script = path.join(cluster.dir, 'job.sh');
      fs.writeFileSync(script, '#!/bin/sh\nexec srun --ntasks-per-node=1 "$@"\n', { mode: 0o755 });
      const out = path.join(cluster.dir, 'job.log');
      const id = (
        await cluster.command(['sbatch', '--parsable', '--nodes=2', '--gres=npu:8', `--output=${out}`, script, 'printenv', 'SLURMD_NODENAME'])
      ).trim();
      await until('the job to complete', async () => /JobState=COMPLETED/.test(await cluster.command(['scontrol', 'show', 'job', '-o', id])), {
        timeoutMs: 60_000,
        everyMs: 500,
      });
      expect(fs.readFileSync(out, 'utf8').trim().split('\n').sort()).toEqual(['n1', 'n2']);
    } finally {
      await cluster.stop();
    }
    expect(processesMentioning(cluster.dir)).toEqual([]);
  }, 180_000);
});
