/**
 * The search attributes every pipeline carries, so runs can be found by name, model, stage, status and
 * failure class (`linkflow list`, the Web UI's filter). Typed keys shared by the workflow (which upserts
 * them as they change) and the client (which sets them at start and queries them). A cluster must have
 * them registered first: the dev servers linkflow starts register them; a production cluster with
 * `temporal operator search-attribute create` (README, "Finding runs").
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const pipelineNameKey = defineSearchAttributeKey('LinkflowPipeline', SearchAttributeType.KEYWORD);
/** The model preset (`custom` for a spec's own architecture). */
export const modelKey = defineSearchAttributeKey('LinkflowModel', SearchAttributeType.KEYWORD);
/** The stage running now; empty once the pipeline ended. */
export const currentStageKey = defineSearchAttributeKey('LinkflowStage', SearchAttributeType.KEYWORD);
/** The pipeline's own status: running, succeeded, failed, cancelled, stopped. */
export const statusKey = defineSearchAttributeKey('LinkflowStatus', SearchAttributeType.KEYWORD);
/** The failure class of the last failed attempt (oom, hang, …), kept after a later attempt succeeds. */
export const failureClassKey = defineSearchAttributeKey('LinkflowFailureClass', SearchAttributeType.KEYWORD);

export const linkflowSearchAttributes = [pipelineNameKey, modelKey, currentStageKey, statusKey, failureClassKey];

/** The type names Temporal's CLI and operator API use (`--search-attribute LinkflowModel=Keyword`). */
const CLI_TYPE_NAMES: Record<SearchAttributeType, string> = {
  TEXT: 'Text',
  KEYWORD: 'Keyword',
  INT: 'Int',
  DOUBLE: 'Double',
  BOOL: 'Bool',
  DATETIME: 'Datetime',
  KEYWORD_LIST: 'KeywordList',
};

/** name → CLI type name, for a dev server's `--search-attribute` flags and the documented `create` commands. */
export function searchAttributeTypes(): Record<string, string> {
  return Object.fromEntries(linkflowSearchAttributes.map((k) => [k.name, CLI_TYPE_NAMES[k.type]]));
}
