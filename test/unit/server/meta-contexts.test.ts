import { Errno, NbdError, type StatusDescriptor } from 'nbd-protocol-ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log/logger.js';
import type { MetaContextSource } from '../../../src/server/block-export.js';
import { ExportList, describeExport } from '../../../src/server/export-table.js';
import { createRemapper } from '../../../src/remap/create-remapper.js';
import { MemoryDevice } from '../remap/helpers/memory-device.js';
import { DEFAULT_SERVER_OPTIONS, NbdServer } from '../../../src/server/nbd-server.js';
import { runTool } from '../../helpers/run-tool.js';
import { scratchDir } from '../../helpers/scratch.js';
import { MemoryExport } from '../client/memory-export.js';

/**
 * An export's own meta contexts (BlockExport.metaContexts), through the real
 * server and a real client (nbdsh): listed after base:allocation, one
 * BLOCK_STATUS chunk per selected context, and a context that fails makes the
 * whole reply one error — never chunks followed by an error.
 */
const KiB = 1024;

class ContextExport extends MemoryExport {
  readonly metaContexts: readonly MetaContextSource[] = [
    { name: 'x-test:halves', status: async (_offset, length): Promise<StatusDescriptor[]> => [{ length: Math.ceil(length / 2), flags: 5 }, { length: Math.floor(length / 2), flags: 2 }] },
    {
      name: 'x-test:broken',
      status: async (): Promise<StatusDescriptor[]> => {
        throw new NbdError(Errno.EOVERFLOW, 'this context always fails');
      },
    },
  ];
}

describe("an export's own meta contexts", () => {
  const dir = scratchDir();
  const path = dir.file('nbd.sock');
  const server = new NbdServer(new ExportList([new ContextExport('mem', 64 * KiB, { blockStatus: true })]), DEFAULT_SERVER_OPTIONS, createLogger({ level: 'error', write: () => {} }));
  const uri = `nbd+unix:///mem?socket=${path}`;

  beforeAll(() => server.listen({ kind: 'unix', path }));
  afterAll(async () => {
    await server.close();
    dir.cleanup();
  });

  async function nbdsh(lines: string[]): Promise<string> {
    const result = await runTool('nbdsh', ['-c', lines.join('\n')]);
    if (result.code !== 0) throw new Error(`nbdsh failed (${result.code}):\n${result.stderr}${result.stdout}`);
    return result.stdout.trim();
  }

  /** nbdsh connected with base:allocation and `context` selected, `seen` empty, then `body`. */
  function withContexts(context: string, body: string[]): Promise<string> {
    return nbdsh(['h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)', `h.add_meta_context(${JSON.stringify(context)})`, `h.connect_uri(${JSON.stringify(uri)})`, 'seen = []', ...body]);
  }

  it('are listed after base:allocation', async () => {
    const out = await nbdsh(['h.set_opt_mode(True)', `h.connect_uri(${JSON.stringify(uri)})`, 'print(h.opt_list_meta_context(lambda name: print(name) or 0))']);
    expect(out.split('\n')).toEqual(['base:allocation', 'x-test:halves', 'x-test:broken', '3']);
  });

  it('each selected context answers in its own chunk of one reply', async () => {
    const out = await withContexts('x-test:halves', [
      `h.block_status(${8 * KiB}, 0, lambda context, offset, entries, err: seen.append((context, offset, list(entries))) or 0)`,
      'print(sorted(seen))',
    ]);
    expect(out).toBe(`[('base:allocation', 0, [${8 * KiB}, 0]), ('x-test:halves', 0, [${4 * KiB}, 5, ${4 * KiB}, 2])]`);
  });

  it('a context that fails turns the request into one error reply, and the connection goes on', async () => {
    const out = await withContexts('x-test:broken', [
      'try:',
      `    h.block_status(${8 * KiB}, 0, lambda context, offset, entries, err: seen.append(context) or 0)`,
      '    print("no error")',
      'except nbd.Error as e:',
      '    print("error", e.errno, seen)',
      `print(len(h.pread(${4 * KiB}, 0)))`,
    ]);
    expect(out).toBe(`error EOVERFLOW []\n${4 * KiB}`);
  });
});

describe('context names an export offers', () => {
  it('must follow the spec: an export offering an unregistered namespace is a programming error, found when it is described', () => {
    class Unregistered extends MemoryExport {
      readonly metaContexts: readonly MetaContextSource[] = [{ name: 'nbd-remapper:written', status: async (_offset, length) => [{ length, flags: 0 }] }];
    }
    expect(() => describeExport(new Unregistered('dst', 4096))).toThrow(/offers meta context nbd-remapper:written: namespace nbd-remapper is neither/);
  });

  it('destination offers its written context in the experimental namespace', () => {
    const engine = createRemapper({ device: new MemoryDevice(8 * 4096, 4096), cacheBytes: 4096 });
    expect(describeExport(engine.destination).metaContexts).toEqual(['base:allocation', 'x-nbd-remapper:written']);
  });
});
