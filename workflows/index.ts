export { pipelineWorkflow, progressQuery } from './pipeline.ts';
