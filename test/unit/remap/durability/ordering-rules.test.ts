import { afterEach, describe, expect, it, vi } from 'vitest';
import { RemapState } from '../../../../src/remap/remap-state.js';
import { StateCommitter } from '../../../../src/remap/state-committer.js';
import { parseStateFile } from '../../../../src/state/file-state-journal.js';
import { decodeFrame, FrameKind, isFrame } from '../../../../src/state/frame-codec.js';
import { parseIdentity } from '../../../../src/state/state-identity.js';
import { decodeRecord } from '../../../../src/state/record-codec.js';
import { CrashRun, prng, randomOps, scenarioFrom, STATE_PATH, type CrashOp } from './helpers/crash-workload.js';

/**
 * The ordering rules of G5 (docs/durability.md §Ordering rules), each checked
 * at the instant it matters on the live run, and each shown to catch a
 * deliberately broken engine (a rule test that cannot fail proves nothing).
 */

/** Runs random workloads with the rule checks installed; returns the violations found. */
async function hunt(install: (run: CrashRun, violations: string[]) => void, workloads = 30, seed = 7): Promise<string[]> {
  const random = prng(seed);
  const violations: string[] = [];
  for (let w = 0; w < workloads && violations.length === 0; w++) {
    const scenario = scenarioFrom(random);
    const run = new CrashRun(scenario);
    run.sampleEvery = 1 << 30;
    install(run, violations);
    const ops = randomOps(run.map, random, { finish: random() < 0.5, length: 30 });
    await run.run(ops).catch((err: unknown) => violations.push(`workload failed: ${(err as Error).message}`));
  }
  return violations;
}

/** Rule 1: the record that lets disk block p be overwritten (its `destroy`) is durable before p is written. */
function permissionBeforeOverwrite(run: CrashRun, violations: string[]): void {
  run.disk.beforeWrite = (offset, length) => {
    if (run.migration === undefined || run.engine.phase === 'unsealed') return;
    const durable = run.fs.durableContents(STATE_PATH);
    if (durable === undefined) return void violations.push('no durable state file while the disk is written');
    const { state } = parseStateFile(STATE_PATH, durable);
    for (let p = Math.floor(offset / run.B); p * run.B < offset + length; p++) {
      if (!state.destroyed.get(p)) violations.push(`disk block ${p} written before a durable record allowed it`);
    }
  };
}

/** Rule 2: the data a `spill` or `land` record points at is durable before the record reaches the state file. */
function dataBeforePointer(run: CrashRun, violations: string[]): void {
  // Frames after the header are checksummed from the file's seed, which its header (written first) records.
  let seed = 0;
  run.fs.beforeFileWrite = (data) => {
    const header = decodeFrame(data, 0);
    if (isFrame(header) && header.kind === FrameKind.Header) {
      const identity = parseIdentity(header.payload.toString('utf8'));
      if (typeof identity !== 'string') seed = identity.frameSeed;
    }
    for (let at = isFrame(header) ? header.end : 0; ; ) {
      const f = decodeFrame(data, at, seed);
      if (!isFrame(f)) break;
      at = f.end;
      if (f.kind !== FrameKind.Spill && f.kind !== FrameKind.Land) continue;
      const r = decodeRecord(f.kind, f.payload)?.record;
      if (r === undefined || (r.type !== 'spill' && r.type !== 'land')) continue;
      for (let k = 0; k < r.count; k++) {
        const block = r.type === 'spill' ? r.slot + k : run.map.homeOf(r.dest + k);
        if (run.disk.pendingOverlapping(block * run.B, run.map.diskBlockLength(block))) {
          violations.push(`${r.type} record for destination block ${r.dest + k} written while disk block ${block} has unsynced data`);
        }
      }
    }
  };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('ordering rules (G5)', () => {
  it('a destroy record is durable before its block is overwritten', async () => {
    expect(await hunt(permissionBeforeOverwrite)).toEqual([]);
  });

  it('… and the check catches an engine that writes before committing the permission', async () => {
    vi.spyOn(StateCommitter.prototype, 'commitThrough').mockResolvedValue(undefined);
    expect((await hunt(permissionBeforeOverwrite)).length).toBeGreaterThan(0);
  });

  it('data is durable before a spill or land record points at it', async () => {
    expect(await hunt(dataBeforePointer)).toEqual([]);
  });

  it('… and the check catches a commit that skips the device sync', async () => {
    vi.spyOn(StateCommitter.prototype, 'needsDeviceSync').mockReturnValue(false);
    expect((await hunt(dataBeforePointer)).length).toBeGreaterThan(0);
  });

  /**
   * FLUSH and FUA: data held in RAM (the home is never released, so it cannot
   * land and the cache has room) must survive a crash right after the
   * acknowledgement; a crash keeping no unsynced write is the worst case.
   */
  async function heldThenCrash(ops: CrashOp[]): Promise<string | undefined> {
    const scenario = { ...scenarioFrom(prng(99)), blockSize: 512, fullBlocks: 8, tail: 0, mapKind: 'identity' as const, cacheBlocks: 4, safe: false, compactBytes: 1 << 30 };
    const run = new CrashRun(scenario);
    await run.run([{ kind: 'seal' }, ...ops]);
    const point = run.points[run.points.length - 1];
    try {
      await run.check(point, 'none', prng(1), true);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }
  const write = (d: number, fua: boolean): CrashOp => ({ kind: 'dstWrite', d, n: 1, seed: 1000 + d, zero: false, fua });

  it('FLUSH: RAM-held writes acknowledged before it survive a crash', async () => {
    expect(await heldThenCrash([write(1, false), write(2, false), { kind: 'flush' }])).toBeUndefined();
  });

  it('… and the check catches a FLUSH that only commits records', async () => {
    vi.spyOn(RemapState.prototype, 'persistHeld').mockImplementation(() => {});
    expect(await heldThenCrash([write(1, false), write(2, false), { kind: 'flush' }])).toMatch(/G3/);
  });

  it('FUA: a RAM-held write with FUA survives a crash without any FLUSH', async () => {
    expect(await heldThenCrash([write(3, true)])).toBeUndefined();
  });

  it('… and the check catches a FUA that does not persist the write', async () => {
    vi.spyOn(RemapState.prototype, 'persistHeld').mockImplementation(() => {});
    expect(await heldThenCrash([write(3, true)])).toMatch(/G3/);
  });

  it('a write acknowledged without FLUSH or FUA may be lost (the model does not over-promise)', async () => {
    // Not an ordering rule: documents that unflushed RAM data is volatile, and that the check accepts losing it.
    expect(await heldThenCrash([write(4, false)])).toBeUndefined();
  });
});
