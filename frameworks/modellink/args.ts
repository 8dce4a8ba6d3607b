/**
 * A ModelLink flag and its value as linkflow keeps them (the shape of examples.json), and how
 * numbers are written in them. Shared by the command builders, the feature table and the presets.
 */

/** A flag and its value: null for a bare flag, a list for nargs="+" flags. */
export type Arg = [flag: string, value: string | string[] | null];

/** An integer as ModelLink's scripts write it. */
export function num(n: number): string {
  return String(n);
}

/** ModelLink's scripts write learning rates as 1.25e-6, not 0.00000125. */
export function float(n: number): string {
  if (n !== 0 && (Math.abs(n) < 1e-3 || Math.abs(n) >= 1e6)) return n.toExponential().replace('e+', 'e');
  return String(n);
}
