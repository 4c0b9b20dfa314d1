/**
 * A parser of Prometheus' text exposition format (version 0.0.4), enough for tests: `# TYPE`
 * and `# HELP` lines and samples with optional labels. It rejects anything it cannot read,
 * so a malformed exposition fails the test that reads it.
 */
import assert from 'node:assert/strict';

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  /** Metric family name to its declared type. */
  readonly types: ReadonlyMap<string, string>;
  readonly samples: readonly Sample[];
}

const TYPE_LINE = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/;
const HELP_LINE = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) /;
const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( \d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;

export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const type = TYPE_LINE.exec(line);
    if (type !== null) {
      assert.ok(!types.has(type[1]!), `family ${type[1]} declared twice`);
      types.set(type[1]!, type[2]!);
      continue;
    }
    if (HELP_LINE.test(line)) continue;
    const sample = SAMPLE_LINE.exec(line);
    assert.ok(sample !== null, `unreadable exposition line: ${line}`);
    // Prometheus reads NaN in any letter case; prom-client writes `Nan`.
    const isNan = /^nan$/i.test(sample[4]!);
    const value = isNan ? Number.NaN : Number(sample[4]);
    assert.ok(!Number.isNaN(value) || isNan, `bad value in: ${line}`);
    samples.push({ name: sample[1]!, labels: parseLabels(sample[3] ?? ''), value });
  }
  return { types, samples };
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < text.length) {
    const match = LABEL.exec(text);
    assert.ok(match !== null, `unreadable labels: ${text}`);
    labels[match[1]!] = match[2]!.replace(/\\(.)/g, (_, char: string) =>
      char === 'n' ? '\n' : char,
    );
  }
  return labels;
}

/** Sums every sample of `name` whose labels include `labels`. */
export function sampleSum(
  exposition: Exposition,
  name: string,
  labels: Record<string, string> = {},
): number {
  let sum = 0;
  for (const sample of exposition.samples) {
    if (sample.name !== name) continue;
    if (Object.entries(labels).every(([key, value]) => sample.labels[key] === value)) {
      sum += sample.value;
    }
  }
  return sum;
}
