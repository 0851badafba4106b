import { randomBytes } from 'node:crypto';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log/logger.js';
import type { FileSpan } from '../../../src/server/block-export.js';
import { ExportList } from '../../../src/server/export-table.js';
import { DEFAULT_SERVER_OPTIONS, NbdServer } from '../../../src/server/nbd-server.js';
import { RawNbdClient } from '../../helpers/raw-nbd-client.js';
import { scratchDir } from '../../helpers/scratch.js';
import { MemoryExport } from '../client/memory-export.js';

const MiB = 1024 * 1024;
const READ = 0;
/** On the repository's file system: a tmpfs file is page cache too, but this is what a disk is. */
const SCRATCH = fileURLToPath(new URL('../../../.cache/test-scratch/', import.meta.url));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An export in memory that says its bytes lie in a file as well: here one sendfile cannot read (open for appending only). */
class UnreadableFileExport extends MemoryExport {
  constructor(private readonly fd: number) {
    super('mem', 4 * MiB);
  }

  fileSpan(offset: number): FileSpan {
    return { fd: this.fd, position: offset };
  }
}

async function attach(path: string): Promise<RawNbdClient> {
  const c = await RawNbdClient.attach({ path }, 'mem');
  cleanups.push(() => c.close());
  return c;
}

describe('a reply from a file the kernel refuses', () => {
  it('is finished by copying after its header went, the log says why once, and every connection copies from then on', async () => {
    const dir = scratchDir('nbd-remapper-file-replies-', SCRATCH);
    cleanups.push(() => dir.cleanup());
    const file = dir.file('data.bin');
    const data = randomBytes(4 * MiB);
    // Written, so cached: cachestat lets the reply start, and sendfile fails after the header (EBADF).
    writeFileSync(file, data);
    const fd = openSync(file, 'a');
    cleanups.push(() => closeSync(fd));
    const exp = new UnreadableFileExport(fd);
    data.copy(exp.data);
    const warnings: string[] = [];
    const server = new NbdServer(new ExportList([exp]), DEFAULT_SERVER_OPTIONS, createLogger({ level: 'warn', write: (line) => warnings.push(line) }));
    const path = dir.file('nbd.sock');
    await server.listen({ kind: 'unix', path });
    cleanups.push(() => server.close());

    // Both connected before the kernel refuses: the second learns of it by its own refusal, and says nothing more.
    const first = await attach(path);
    const second = await attach(path);
    for (const [cookie, offset, length] of [
      [1n, 0, MiB],
      [2n, 12345, 100_000],
    ] as const) {
      first.sendRequest({ type: READ, cookie, offset, length });
      const reply = await first.readSimpleReply(length);
      expect(reply).toMatchObject({ error: 0, cookie });
      expect(reply.data.equals(data.subarray(offset, offset + length))).toBe(true);
    }
    const third = await attach(path);
    for (const [client, cookie] of [
      [second, 3n],
      [third, 4n],
    ] as const) {
      client.sendRequest({ type: READ, cookie, offset: 2 * MiB, length: MiB });
      const reply = await client.readSimpleReply(MiB);
      expect(reply).toMatchObject({ error: 0, cookie });
      expect(reply.data.equals(data.subarray(2 * MiB, 3 * MiB))).toBe(true);
    }

    const said = warnings.filter((w) => w.includes('read replies are copied through the server from now on'));
    expect(said).toHaveLength(1);
    expect(said[0]).toContain('sendfile: Bad file descriptor');
  });
});
