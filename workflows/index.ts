export { pipelineWorkflow } from './pipeline.ts';
export { benchmarkWorkflow } from './benchmark.ts';
export { progressQuery, benchmarkProgressQuery } from '../contracts/workflows.ts';
