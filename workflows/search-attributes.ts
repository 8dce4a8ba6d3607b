/**
 * Keeps a pipeline's search attributes (contracts/search-attributes.ts) in step with its state:
 * upserts only what changed, so each change costs one history event and an unchanged state none.
 * Only when the client found them registered (PipelineInput.searchAttributes): upserting an unknown
 * attribute would fail the workflow task on a cluster that lacks them.
 */
import type { SearchAttributeUpdatePair } from '@temporalio/common';
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { PipelineState } from '../contracts/run-state.ts';
import { currentStageKey, failureClassKey, modelKey, pipelineNameKey, statusKey } from '../contracts/search-attributes.ts';

/** The failure class of the last failed attempt of any stage, in the order the stages ran. */
function lastFailureClass(state: PipelineState): string | undefined {
  let last: { at: number; cls: string } | undefined;
  for (const s of state.stages)
    for (const a of s.attempts)
      if (a.outcome === 'failed' && a.failureClass && (last === undefined || (a.endedAt ?? 0) >= last.at)) last = { at: a.endedAt ?? 0, cls: a.failureClass };
  return last?.cls;
}

/** What the attributes should say now; undefined values are left as they are. */
export function searchAttributesOf(state: PipelineState, model: string | undefined): SearchAttributeUpdatePair[] {
  const pairs: SearchAttributeUpdatePair[] = [
    { key: pipelineNameKey, value: state.pipeline },
    { key: statusKey, value: state.status },
    // An ended pipeline runs no stage: the attribute is removed, so `LinkflowStage = "x"` finds running ones only.
    { key: currentStageKey, value: state.currentStage ?? null },
  ];
  if (model) pairs.push({ key: modelKey, value: model });
  const failureClass = lastFailureClass(state);
  if (failureClass) pairs.push({ key: failureClassKey, value: failureClass });
  return pairs;
}

export function publishSearchAttributes(enabled: boolean | undefined, state: PipelineState, model: string | undefined): void {
  if (!enabled) return;
  const current = workflowInfo().typedSearchAttributes;
  const changed = searchAttributesOf(state, model).filter((p) => (current.get(p.key) ?? null) !== p.value);
  if (changed.length > 0) upsertSearchAttributes(changed);
}
