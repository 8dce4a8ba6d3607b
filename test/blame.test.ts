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

  it('a node that waited for a peer that never came is not blamed; one whose own port was taken is', () => {
    // https://github.com/pytorch/pytorch/issues/76367: both nodes timed out reaching the rendezvous (failures/corpus/communication).
    expect(blamed(['[E socket.cpp:793] [c10d] The client socket has timed out after 60s while trying to connect to (IP1, 2222).'])).toEqual({
      class: 'communication',
      evidence: 'rendezvous',
      blame: false,
    });
    // torch/distributed/elastic/utils/store.py's barrier, as the rank that came prints it.
    expect(blamed(['torch.distributed.DistStoreError: Timed out after 901 seconds waiting for clients. 1/2 clients joined.'])).toEqual({
      class: 'communication',
      evidence: 'rendezvous',
      blame: false,
    });
    // failures/corpus/communication/torch-npu-docs-port-in-use.log: the bind failed on this node, and that decides.
    expect(
      blamed([
        '[W socket.cpp:436] [c10d] The server socket has failed to bind to [::]:29500 (errno: 98 - Address already in use).',
        'torch.distributed.DistNetworkError: The server socket has failed to listen on any local network address.',
      ]),
    ).toEqual({ class: 'communication', evidence: 'network', blame: true });
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
