import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { mustRun, runTool } from '../helpers/run-tool.js';
import { scratchDir } from '../helpers/scratch.js';
import { newcArchive } from './newc-archive.js';

describe('newcArchive', () => {
  const dir = scratchDir('nbd-remapper-newc-');
  afterAll(() => dir.cleanup());

  it('writes an archive that GNU cpio unpacks to the same tree and bytes', async () => {
    // Lengths 0..5 and odd sizes exercise every padding case of headers and data.
    const files = new Map<string, Buffer>([
      ['vm/files/a', randomBytes(0)],
      ['vm/files/bb', randomBytes(1)],
      ['vm/files/ccc', randomBytes(2)],
      ['vm/files/dddd', randomBytes(3)],
      ['vm/files/big.bin', randomBytes(100_003)],
    ]);
    const archive = newcArchive([{ path: 'vm' }, { path: 'vm/files' }, ...[...files].map(([path, content]) => ({ path, content }))]);
    const listing = await mustRun('cpio', ['-it', '--quiet'], { input: archive });
    expect(listing.trim().split('\n')).toEqual(['vm', 'vm/files', ...files.keys()]);

    const unpacked = await runTool('sh', ['-c', `cd '${dir.path}' && cpio -id --quiet`], { input: archive });
    expect(unpacked.code, unpacked.stderr).toBe(0);
    expect(statSync(dir.file('vm/files')).isDirectory()).toBe(true);
    for (const [path, content] of files) expect(readFileSync(dir.file(path)).equals(content), path).toBe(true);
  });

  it('refuses absolute paths and paths that climb out', () => {
    expect(() => newcArchive([{ path: '/etc/passwd', content: Buffer.from('x') }])).toThrow(/relative/);
    expect(() => newcArchive([{ path: 'vm/../../x', content: Buffer.from('x') }])).toThrow(/relative/);
  });
});
