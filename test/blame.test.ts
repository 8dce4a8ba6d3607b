/** Which failures count against the node they ran on (failures/blame.ts): the class and the evidence together. */
import { describe, expect, it } from 'vitest';
import { blameWorthy } from '../failures/blame.ts';
import { classifyFailure } from '../failures/failures.ts';

const exit1 = { exitCode: 1, signal: null };
const blamed = (lines: string[], status = exit1) => {
  const r = classifyFailure(status, lines);
  return { class: r.class, evidence: r.evidence, blame: blameWorthy({ failureClass: r.class, evidence: r.evidence }) };
};

describe('blame only with evidence about the machine', () => {
  it("a rank's own Python error never blames its node, nor do its peers' HCCL echoes", () => {
    const log = [
      '[rank0]: Traceback (most recent call last):',
      '[rank0]:   File "pretrain_gpt.py", line 262, in <module>',
      "[rank0]: KeyError: 'input_ids'",
      ...[1, 2, 3].map((r) => `[rank${r}]: RuntimeError: [Rank ${r}] HCCL AllReduce failed: ERR02200 DIST call hccl api failed.`),
    ];
    expect(blamed(log)).toEqual({ class: 'exception', evidence: 'error', blame: false });
    expect(blamed(log.slice(3))).toMatchObject({ class: 'communication', evidence: 'echo', blame: false });
  });

  it('a link this node could not build, a native crash and a lost worker do', () => {
    // https://github.com/vllm-project/vllm-ascend/issues/405: the port was bound already (EJ0003).
    expect(blamed(['EJ0003: [PID: 159] Failed to bind the IP port. Reason: The IP address and port have been bound already.'])).toMatchObject({
      class: 'communication',
      evidence: 'network',
      blame: true,
    });
    expect(
      blamed(['torch.distributed.elastic.multiprocessing.api: [ERROR] failed (exitcode: -11) local_rank: 0 (pid: 7) of binary: /usr/bin/python3']),
    ).toMatchObject({
      class: 'segfault',
      blame: true,
    });
    expect(blameWorthy({ failureClass: 'node-lost' })).toBe(true);
  });

  it("a hang, the host's OOM killer and a device OOM are the job's: no blame", () => {
    expect(
      blamed([
        '[E ProcessGroupNCCL.cpp:475] [Rank 1] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=3, OpType=ALLREDUCE) ran for 1800008 milliseconds before timing out.',
      ]).blame,
    ).toBe(false);
    expect(blamed(['[856341.770960] Out of memory: Killed process 410126 (python) total-vm:79905000kB']).blame).toBe(false);
    expect(blamed(['RuntimeError: NPU out of memory. Tried to allocate 2.00 GiB']).blame).toBe(false);
  });
});
