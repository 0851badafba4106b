import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { requireTools } from '../../../bench/tools.js';

describe('requireTools (the benchmark checks its peers before timing anything)', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  function pathWith(...executables: string[]): string {
    const dir = mkdtempSync(join(tmpdir(), 'bench-tools-'));
    dirs.push(dir);
    for (const name of executables) {
      writeFileSync(join(dir, name), '#!/bin/sh\n');
      chmodSync(join(dir, name), 0o755);
    }
    return dir;
  }

  it('names every missing tool and one install command for their packages', () => {
    const path = pathWith('fio');
    expect(() => requireTools(['fio', 'qemu-nbd', 'nbdcopy', 'qemu-nbd'], path)).toThrow(
      'the benchmark needs qemu-nbd, nbdcopy, not found; install with: apt-get install -y qemu-utils libnbd-bin',
    );
  });

  it('passes when each tool is an executable on the path', () => {
    const path = pathWith('fio', 'nbdkit');
    expect(() => requireTools(['fio', 'nbdkit'], path)).not.toThrow();
  });

  it('does not take a file that cannot be executed', () => {
    const path = pathWith();
    writeFileSync(join(path, 'nbdkit'), 'not a program');
    expect(() => requireTools(['nbdkit'], path)).toThrow(/apt-get install -y nbdkit/);
  });
});
