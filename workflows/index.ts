import { benchmarkWorkflowType, pipelineWorkflowType, type BenchmarkWorkflow, type PipelineWorkflow } from '../contracts/workflows.ts';
import { benchmarkWorkflow } from './benchmark.ts';
import { pipelineWorkflow } from './pipeline.ts';

export { pipelineWorkflow, benchmarkWorkflow };
export { progressQuery, benchmarkProgressQuery } from '../contracts/workflows.ts';

// The client starts workflows by the names and signatures of contracts/workflows.ts: tsc checks here
// that each is exported under that name (the shorthand keys) with that signature.
const registered = { pipelineWorkflow, benchmarkWorkflow } satisfies { [pipelineWorkflowType]: PipelineWorkflow; [benchmarkWorkflowType]: BenchmarkWorkflow };
void registered;
