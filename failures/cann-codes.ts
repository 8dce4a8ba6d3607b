/**
 * Ascend CANN error codes as they appear in training logs (`EI0002: …`, `…(EL0004): …`, `error code
 * is 107020`), what each means and the failure class it decides. The meanings are CANN's own, from
 * its troubleshooting error-code reference (CANN_ERROR_CODES_DOC) and the threads linked per row
 * where real logs show them. `role` says how a code relates to a job of many ranks: `cause` (this
 * rank's own fault), `echo` (what a rank prints when a peer failed or is stuck: a cause elsewhere in
 * the log wins over it), `network` (a link could not be built: communication unless a rank's own
 * cause is in the log).
 */
import type { FailureClass } from './classes.ts';

export const CANN_ERROR_CODES_DOC = 'https://www.hiascend.com/document/detail/zh/CANNCommunityEdition/80RC3alpha003/apiref/envref/troubleshooting_0001.html';

export type CannRole = 'cause' | 'echo' | 'network';

export interface CannCode {
  code: string;
  meaning: string;
  class: FailureClass;
  role: CannRole;
  /** A thread with a real log that shows it, or CANN's doc. */
  source: string;
}

export const CANN_CODES: readonly CannCode[] = [
  {
    code: 'EL0004',
    meaning: 'Memory_Allocation_Failure: failed to allocate device memory',
    class: 'out-of-memory',
    role: 'cause',
    source: 'https://github.com/hiyouga/LLaMA-Factory/issues/5322',
  },
  {
    code: 'EI0002',
    meaning: 'the wait execution of the Notify register timed out: a peer never reached the collective (it failed, or is stuck or slow)',
    class: 'hang',
    role: 'echo',
    source: 'https://github.com/vllm-project/vllm-ascend/issues/3413',
  },
  {
    code: 'EI0006',
    meaning: 'getting a socket timed out: the HCCL link to a peer could not be built (HCCL_CONNECT_TIMEOUT)',
    class: 'communication',
    role: 'network',
    source: 'https://github.com/vllm-project/afd-plugin/issues/229',
  },
  {
    code: 'EI9999',
    meaning: 'HCCL inner error; with "stuck notify" / "hccl fftsplus task timeout" a collective waited for a stuck peer',
    class: 'hang',
    role: 'echo',
    source: 'https://github.com/Ascend/pytorch/issues/54',
  },
  {
    code: 'EZ9999',
    meaning: 'inner error of an operator (an AI Core / AI Vector exception in a kernel of the job)',
    class: 'exception',
    role: 'cause',
    source: 'https://github.com/sgl-project/sglang/issues/12464',
  },
  {
    code: 'EE9999',
    meaning: 'runtime inner error; with "event wait timeout" a stream waited for work that never came',
    class: 'hang',
    role: 'echo',
    source: 'https://discuss.mindspore.cn/t/topic/1156',
  },
  {
    code: 'EE1002',
    meaning: 'stream synchronize timeout: the device did not finish its queued work in time',
    class: 'hang',
    role: 'echo',
    source: 'https://github.com/hiyouga/LLaMA-Factory/issues/5551',
  },
  {
    code: 'EH9999',
    meaning: 'runtime inner error; with "aicore timeout" / "task timeout" a kernel or collective never finished',
    class: 'hang',
    role: 'echo',
    source: 'https://github.com/vllm-project/vllm-ascend/issues/4972',
  },
  {
    code: 'E90003',
    meaning: "an operator failed to compile or load on the device (the job's operator or the CANN installation)",
    class: 'exception',
    role: 'cause',
    source: CANN_ERROR_CODES_DOC,
  },
  {
    code: 'E39999',
    meaning: 'inner error of the runtime reported with an AI Core error ("The Inner error is reported as above")',
    class: 'exception',
    role: 'cause',
    source: CANN_ERROR_CODES_DOC,
  },
  {
    code: 'EJ0001',
    meaning: 'the HCCP process failed to initialise: the NIC/port of the device network is unusable (or a stale process holds it)',
    class: 'communication',
    role: 'network',
    source: CANN_ERROR_CODES_DOC,
  },
  {
    code: 'EJ0003',
    meaning: 'failed to bind the IP port: the address and port are already bound',
    class: 'communication',
    role: 'network',
    source: 'https://github.com/vllm-project/vllm-ascend/issues/405',
  },
  {
    code: '107020',
    meaning: 'ACL stream/device synchronize timed out (torch_npu treats it as the HCCL timeout): a collective waited for a stuck rank',
    class: 'hang',
    role: 'echo',
    source: 'https://github.com/Ascend/pytorch/issues/54',
  },
  {
    code: '507014',
    meaning: 'ACL_ERROR_RT_AICORE_TIMEOUT: an AI Core kernel ran past its time limit',
    class: 'hang',
    role: 'echo',
    source: 'https://github.com/vllm-project/vllm-ascend/issues/4972',
  },
];

/** A code as logs print it: `EI0002:`, `(EL0004)`, `error code is 107020`, `runtime result = 507014`. */
export function cannCodePattern(code: string): RegExp {
  return /^\d+$/.test(code) ? new RegExp(`(?:error code is|runtime result = |error code[: =]+)\\s*${code}\\b`) : new RegExp(`\\b${code}\\b[):\\s]`);
}

export function cannCode(code: string): CannCode | undefined {
  return CANN_CODES.find((c) => c.code === code);
}
