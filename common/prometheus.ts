/**
 * A small Prometheus registry written by hand (prom-client is not a dependency): counters, gauges and
 * histograms with labels, rendered in the text exposition format 0.0.4. Every metric declares its label
 * names; a value with other labels is a programming error. No I/O.
 */

type Labels = Record<string, string>;

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  labelNames: readonly string[];
  render(): string[];
}

function escapeValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Labels, extra: [string, string][] = []): string {
  const pairs = [...Object.entries(labels), ...extra];
  return pairs.length === 0 ? '' : `{${pairs.map(([k, v]) => `${k}="${escapeValue(v)}"`).join(',')}}`;
}

function formatNumber(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '+Inf';
  if (x === -Infinity) return '-Inf';
  return String(x);
}

abstract class Metric<V> implements Family {
  protected readonly series = new Map<string, { labels: Labels; value: V }>();
  abstract readonly type: Family['type'];
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
  ) {}

  protected key(labels: Labels): string {
    const names = Object.keys(labels);
    if (names.length !== this.labelNames.length || !this.labelNames.every((n) => n in labels))
      throw new Error(`${this.name}: labels ${names.join(',')} instead of ${this.labelNames.join(',')}`);
    return JSON.stringify(this.labelNames.map((n) => labels[n]));
  }

  /** Labels in the declared order, so the output does not depend on how a caller wrote them. */
  protected ordered(labels: Labels): Labels {
    return Object.fromEntries(this.labelNames.map((n) => [n, labels[n]]));
  }

  /** Drops a series (a stage that no longer runs must not linger at its last value). */
  remove(labels: Labels): void {
    this.series.delete(this.key(labels));
  }

  abstract render(): string[];
}

export class Gauge extends Metric<number> {
  readonly type = 'gauge';
  set(labels: Labels, value: number): void {
    this.series.set(this.key(labels), { labels: this.ordered(labels), value });
  }
  render(): string[] {
    return [...this.series.values()].map((s) => `${this.name}${labelText(s.labels)} ${formatNumber(s.value)}`);
  }
}

/** A gauge whose series come from a function at each scrape (e.g. nodes by state, from whoever knows them). */
export class CallbackGauge implements Family {
  readonly type = 'gauge';
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly collect: () => { labels: Labels; value: number }[],
  ) {}
  render(): string[] {
    return this.collect().map((s) => `${this.name}${labelText(s.labels)} ${formatNumber(s.value)}`);
  }
}

export class Counter extends Metric<number> {
  readonly type = 'counter';
  inc(labels: Labels, by = 1): void {
    if (by < 0) throw new Error(`${this.name}: a counter only goes up`);
    const key = this.key(labels);
    const s = this.series.get(key);
    if (s) s.value += by;
    else this.series.set(key, { labels: this.ordered(labels), value: by });
  }
  render(): string[] {
    return [...this.series.values()].map((s) => `${this.name}${labelText(s.labels)} ${formatNumber(s.value)}`);
  }
}

export class Histogram extends Metric<{ buckets: number[]; sum: number; count: number }> {
  readonly type = 'histogram';
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly bounds: readonly number[],
  ) {
    super(name, help, labelNames);
  }
  observe(labels: Labels, value: number): void {
    const key = this.key(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels: this.ordered(labels), value: { buckets: this.bounds.map(() => 0), sum: 0, count: 0 } };
      this.series.set(key, s);
    }
    this.bounds.forEach((b, i) => {
      if (value <= b) s.value.buckets[i]++;
    });
    s.value.sum += value;
    s.value.count++;
  }
  render(): string[] {
    return [...this.series.values()].flatMap(({ labels, value }) => [
      ...this.bounds.map((b, i) => `${this.name}_bucket${labelText(labels, [['le', formatNumber(b)]])} ${value.buckets[i]}`),
      `${this.name}_bucket${labelText(labels, [['le', '+Inf']])} ${value.count}`,
      `${this.name}_sum${labelText(labels)} ${formatNumber(value.sum)}`,
      `${this.name}_count${labelText(labels)} ${value.count}`,
    ]);
  }
}

export class Registry {
  private readonly families: Family[] = [];

  register<F extends Family>(family: F): F {
    if (this.families.some((f) => f.name === family.name)) throw new Error(`metric ${family.name} registered twice`);
    this.families.push(family);
    return family;
  }

  /** Every metric's name and type (what a dashboard may query). */
  names(): { name: string; type: Family['type']; labelNames: readonly string[] }[] {
    return this.families.map((f) => ({ name: f.name, type: f.type, labelNames: f.labelNames }));
  }

  /** The text exposition format. */
  render(): string {
    return (
      this.families.map((f) => [`# HELP ${f.name} ${f.help.replace(/\n/g, ' ')}`, `# TYPE ${f.name} ${f.type}`, ...f.render()].join('\n')).join('\n') + '\n'
    );
  }
}
