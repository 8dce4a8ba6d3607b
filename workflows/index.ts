export { pipelineWorkflow, progressQuery } from './pipeline.ts';
export { benchmarkWorkflow, benchmarkProgressQuery } from './benchmark.ts';
