/**
 * A gang's objects checked without a cluster, as the API server's strict field validation would:
 * against OpenAPI v3 schemas (the core kinds' as kube-apiserver serves them, a CRD's
 * openAPIV3Schema), unknown fields, types, required fields, enums and bounds, each problem with its
 * path in the object. A subset of the API server's checks (no admission, no cross-field rules):
 * `linkflow validate` says which one ran. Pure: the schemas are passed in.
 */
export type Schema = {
  type?: string;
  format?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  pattern?: string;
  allOf?: Schema[];
  oneOf?: Schema[];
  anyOf?: Schema[];
  $ref?: string;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
};

/** Problems of `value` against `schema`; `$ref`s resolve in `components`. */
export function checkAgainst(value: unknown, schema: Schema, components: Record<string, Schema>, at = ''): string[] {
  const s = resolve(schema, components);
  if (s['x-kubernetes-int-or-string'] || s.format === 'int-or-string') {
    return typeof value === 'string' || Number.isInteger(value) ? [] : [`${at || '.'}: expected an integer or a string`];
  }
  const alternatives = s.oneOf ?? s.anyOf;
  if (alternatives && !s.type && !s.properties) {
    const fits = alternatives.some((a) => checkAgainst(value, a, components, at).length === 0);
    return fits ? [] : [`${at || '.'}: matches none of the allowed forms`];
  }
  const problems: string[] = [];
  if (s.enum && !s.enum.includes(value))
    problems.push(`${at}: Unsupported value ${JSON.stringify(value)}: supported values: ${s.enum.map((e) => JSON.stringify(e)).join(', ')}`);
  switch (s.type) {
    case 'object':
      return [...problems, ...checkObject(value, s, components, at)];
    case 'array':
      if (!Array.isArray(value)) return [`${at}: expected an array, got ${typeOf(value)}`];
      return [...problems, ...value.flatMap((v, i) => (s.items ? checkAgainst(v, s.items, components, `${at}[${i}]`) : []))];
    case 'string':
      if (typeof value !== 'string') return [`${at}: expected a string, got ${typeOf(value)}`];
      if (s.maxLength !== undefined && value.length > s.maxLength) problems.push(`${at}: longer than ${s.maxLength} characters`);
      if (s.pattern && !new RegExp(s.pattern).test(value)) problems.push(`${at}: ${JSON.stringify(value)} does not match ${s.pattern}`);
      return problems;
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || (s.type === 'integer' && !Number.isInteger(value)))
        return [`${at}: expected ${s.type === 'integer' ? 'an integer' : 'a number'}, got ${typeOf(value)}`];
      if (s.minimum !== undefined && value < s.minimum) problems.push(`${at}: should be greater than or equal to ${s.minimum}`);
      if (s.maximum !== undefined && value > s.maximum) problems.push(`${at}: should be less than or equal to ${s.maximum}`);
      return problems;
    case 'boolean':
      return typeof value === 'boolean' ? problems : [`${at}: expected a boolean, got ${typeOf(value)}`];
    default:
      // No type: what the properties say, if anything.
      return s.properties ? [...problems, ...checkObject(value, s, components, at)] : problems;
  }
}

function checkObject(value: unknown, s: Schema, components: Record<string, Schema>, at: string): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return [`${at}: expected an object, got ${typeOf(value)}`];
  const obj = value as Record<string, unknown>;
  const problems = (s.required ?? []).filter((r) => obj[r] === undefined).map((r) => `${at}.${r}: Required value`);
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    const prop = s.properties?.[k];
    if (prop) problems.push(...checkAgainst(v, prop, components, `${at}.${k}`));
    else if (typeof s.additionalProperties === 'object') problems.push(...checkAgainst(v, s.additionalProperties, components, `${at}.${k}`));
    else if (s.properties && !s['x-kubernetes-preserve-unknown-fields'] && s.additionalProperties !== true)
      problems.push(`${at}.${k}: unknown field "${(at + '.' + k).replace(/^\./, '')}"`);
  }
  return problems;
}

/** A schema with its $ref and single-element allOf (the API's way of writing a reference) folded in. */
function resolve(schema: Schema, components: Record<string, Schema>): Schema {
  let s = schema;
  for (let i = 0; i < 20; i++) {
    if (s.$ref) {
      const { $ref, ...rest } = s;
      const target = components[$ref.replace('#/components/schemas/', '')];
      if (!target) throw new Error(`schema ${$ref} is missing from the carried schemas`);
      s = { ...target, ...rest };
    } else if (s.allOf?.length === 1) {
      const { allOf, ...rest } = s;
      s = { ...allOf[0], ...rest };
    } else return s;
  }
  return s;
}

function typeOf(v: unknown): string {
  return Array.isArray(v) ? 'an array' : v === null ? 'null' : typeof v;
}
