import {
  benchmarkWorkflowType,
  pipelineWorkflowType,
  preflightOnNodeWorkflowType,
  readLogChunkWorkflowType,
  type BenchmarkWorkflow,
  type PreflightOnNodeWorkflow,
  type PipelineWorkflow,
  type ReadLogChunkWorkflow,
} from '../contracts/workflows.ts';
import { benchmarkWorkflow } from './benchmark.ts';
import { pipelineWorkflow } from './pipeline.ts';
import { poolWorkflow } from './pool.ts';
import { poolWorkflowType, type PoolWorkflow } from '../contracts/pool.ts';
import { readLogChunkWorkflow } from './read-log.ts';
import { preflightOnNodeWorkflow } from './preflight.ts';

export { pipelineWorkflow, benchmarkWorkflow, poolWorkflow, readLogChunkWorkflow, preflightOnNodeWorkflow };
export { progressQuery, benchmarkProgressQuery } from '../contracts/workflows.ts';

// The client starts workflows by the names and signatures of contracts/workflows.ts: tsc checks here
// that each is exported under that name (the shorthand keys) with that signature.
const registered = { pipelineWorkflow, benchmarkWorkflow, poolWorkflow, readLogChunkWorkflow, preflightOnNodeWorkflow } satisfies {
  [pipelineWorkflowType]: PipelineWorkflow;
  [benchmarkWorkflowType]: BenchmarkWorkflow;
  [poolWorkflowType]: PoolWorkflow;
  [readLogChunkWorkflowType]: ReadLogChunkWorkflow;
  [preflightOnNodeWorkflowType]: PreflightOnNodeWorkflow;
};
void registered;
