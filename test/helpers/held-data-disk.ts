import { writeFileSync } from 'node:fs';
import { expect } from 'vitest';
import { nbdshScript } from './nbdsh-script.js';
import { randomImage, scratchDir } from './scratch.js';
import { startServerProcess } from './server-process.js';

const MiB = 1024 * 1024;

/** `cleanup` of useCleanups(). */
type Cleanup = (cleanup: () => Promise<unknown> | void) => void;

/**
 * A 4 MiB disk whose destination is shifted by 1 MiB: with the source unread,
 * what is written to destination [0, 1 MiB) stays held in RAM — what a stop
 * must carry into the state. `args` serve it with the control socket given.
 */
export function heldDataDisk(prefix: string, cleanup: Cleanup): { disk: string; socket: string; args(control: string): string[] } {
  const dir = scratchDir(prefix);
  cleanup(() => dir.cleanup());
  const disk = dir.file('disk.img');
  randomImage(disk, 4 * MiB);
  const mapFile = dir.file('map.json');
  writeFileSync(mapFile, JSON.stringify({ extents: [{ destOffset: 0, length: 3 * MiB, diskOffset: MiB }] }));
  const socket = dir.file('nbd.sock');
  return { disk, socket, args: (control) => ['serve', '--disk', disk, '--map', mapFile, '--socket', socket, '--control', control] };
}

/** Python for 1 MiB of bytes that depend on `seed`: what a test writes to destination offset 0. */
export const heldPattern = (seed: number): string => `bytes((i * 13 + ${seed}) & 0xff for i in range(${MiB}))`;

/** Serves `args` again: the migration resumes with the 1 MiB held in RAM from the state, and destination reads it back. */
export async function expectHeldDataKept(args: readonly string[], seed: number, cleanup: Cleanup): Promise<void> {
  const again = await startServerProcess(args);
  cleanup(() => again.stop('SIGKILL'));
  expect(again.stderr()).toMatch(/resumed the migration .*256 destination block\(s\) held \(256 in RAM from the state/);
  await nbdshScript(again.uri('destination'), `assert h.pread(${MiB}, 0) == ${heldPattern(seed)}, "held data kept by the clean stop"`);
  expect(await again.stop()).toBe(0);
}
