import { benchmarkWorkflowType, pipelineWorkflowType, type BenchmarkWorkflow, type PipelineWorkflow } from '../contracts/workflows.ts';
import { benchmarkWorkflow } from './benchmark.ts';
import { pipelineWorkflow } from './pipeline.ts';
import { poolWorkflow } from './pool.ts';
import { poolWorkflowType, type PoolWorkflow } from '../contracts/pool.ts';

export { pipelineWorkflow, benchmarkWorkflow, poolWorkflow };
export { progressQuery, benchmarkProgressQuery } from '../contracts/workflows.ts';

// The client starts workflows by the names and signatures of contracts/workflows.ts: tsc checks here
// that each is exported under that name (the shorthand keys) with that signature.
const registered = { pipelineWorkflow, benchmarkWorkflow, poolWorkflow } satisfies {
  [pipelineWorkflowType]: PipelineWorkflow;
  [benchmarkWorkflowType]: BenchmarkWorkflow;
  [poolWorkflowType]: PoolWorkflow;
};
void registered;
