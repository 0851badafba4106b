import type { DurableState } from '../../../src/state/durable-state.js';

/** A canonical description of a recovered state, to compare states. */
export function describeState(state: DurableState, holds: ReadonlyMap<number, Buffer>): string {
  const runs = (b: DurableState['released']): string => {
    const out: string[] = [];
    b.forEachRun(true, 0, b.size, (a, e) => out.push(`${a}-${e}`));
    return out.join(',');
  };
  const sets = (x: DurableState['free']): string => [...x.all()].map((r) => `${r.start}-${r.end}`).join(',');
  return JSON.stringify({
    phase: state.phase,
    free: sets(state.free),
    released: runs(state.released),
    trimmed: runs(state.trimmed),
    unconfirmed: runs(state.unconfirmed),
    destroyed: runs(state.destroyed),
    landed: runs(state.landed),
    zeros: sets(state.zeros),
    spill: [...state.spill.all()].map((r) => `${r.start}-${r.end}:${r.value}`).join(','),
    holds: [...holds].sort((a, b) => a[0] - b[0]).map(([d, data]) => `${d}:${data.toString('hex')}`),
    samples: state.samples,
    records: state.records,
  });
}
