import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nbdshScript } from '../helpers/nbdsh-script.js';
import { scratchDir, sparseImage } from '../helpers/scratch.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const MiB = 1024 * 1024;
/** Disk size deliberately not a multiple of 4096, so the tail is exercised. */
const SIZE = 8 * MiB + 1536;

/**
 * Edge cases of the transmission phase driven through libnbd (nbdsh) with its
 * client-side checks off, so the server's own answers are what is tested.
 */
describe('transmission semantics via nbdsh', () => {
  const dir = scratchDir();
  const disk = dir.file('disk.img');
  let server: ServerProcess;

  beforeAll(async () => {
    sparseImage(disk, SIZE, [{ offset: 0, length: MiB }]);
    server = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('nbd.sock')]);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
    dir.cleanup();
  });

  const script = (body: string): Promise<string> => nbdshScript(server.uri('source'), body);

  it('answers out-of-range requests with the errno the spec names', async () => {
    await script(`
assert size == ${SIZE}
expect_errno(errno.EINVAL, lambda: h.pread(4096, size - 512))
expect_errno(errno.EINVAL, lambda: h.pread(1, size))
expect_errno(errno.ENOSPC, lambda: h.pwrite(b"x" * 4096, size - 512))
expect_errno(errno.ENOSPC, lambda: h.zero(8192, size - 4096))
expect_errno(errno.EINVAL, lambda: h.trim(4096, size - 1024))
expect_errno(errno.EINVAL, lambda: h.block_status(8192, size - 4096, lambda *a: 0))
expect_errno(errno.EINVAL, lambda: h.pread(512, 2**62))
# the connection is still healthy afterwards
assert h.pread(512, size - 512) is not None
`);
  });

  it('rejects unknown command flags and flags on the wrong command with EINVAL', async () => {
    await script(`
expect_errno(errno.EINVAL, lambda: h.pread(512, 0, 1 << 9))
expect_errno(errno.EINVAL, lambda: h.pwrite(b"y" * 512, 0, nbd.CMD_FLAG_DF))
expect_errno(errno.EINVAL, lambda: h.pread(512, 0, nbd.CMD_FLAG_NO_HOLE))
`);
  });

  it('serves zero-length requests as no-ops', async () => {
    await script(`
assert h.pread(0, 0) == b""
h.pwrite(b"", 4096)
h.pread(0, size)
`);
  });

  it('honours DF reads, FLUSH and FUA, and the last partial block', async () => {
    await script(`
h.pwrite(b"\\xa5" * 65536, 131072, nbd.CMD_FLAG_FUA)
assert h.pread(65536, 131072, nbd.CMD_FLAG_DF) == b"\\xa5" * 65536
h.pwrite(b"\\x5a" * 1000, size - 1000)
h.flush()
assert h.pread(1000, size - 1000) == b"\\x5a" * 1000
`);
    const bytes = readFileSync(disk);
    expect(bytes.subarray(131072, 131072 + 65536).every((b) => b === 0xa5)).toBe(true);
    expect(bytes.subarray(SIZE - 1000).every((b) => b === 0x5a)).toBe(true);
  });

  it('reports holes and data through base:allocation block status', async () => {
    const out = await script(`
found = []
def cb(ctx, offset, entries, err):
    found.extend((ctx, entries[i], entries[i + 1]) for i in range(0, len(entries), 2))
    return 0
h.block_status(4 * ${MiB}, 0, cb)
print("EXTENTS", found)
assert all(ctx == "base:allocation" for ctx, _, _ in found)
assert sum(length for _, length, _ in found) <= 4 * ${MiB}
assert found[0][2] == 0, "first MiB holds data"
holes = [f for f in found if f[2] & 1]
assert holes, "a hole after the first MiB"
found.clear()
h.block_status(4 * ${MiB}, 0, cb, nbd.CMD_FLAG_REQ_ONE)
assert len(found) == 1
`);
    expect(out).toMatch(/EXTENTS/);
  });

  it('zeroes ranges with WRITE_ZEROES, and refuses FAST_ZERO where zeroing is slow', async () => {
    await script(`
h.pwrite(b"\\x11" * 8192, 65536)
h.zero(8192, 65536)
assert h.pread(8192, 65536) == bytes(8192)
# data is there, so a fast zero cannot be promised
h.pwrite(b"\\x22" * 4096, 3 * ${MiB})
expect_errno(errno.ENOTSUP, lambda: h.zero(4096, 3 * ${MiB}, nbd.CMD_FLAG_FAST_ZERO))
assert h.pread(4096, 3 * ${MiB}) == b"\\x22" * 4096
# a hole is already zero: fast zero succeeds
h.zero(4096, 6 * ${MiB}, nbd.CMD_FLAG_FAST_ZERO)
`);
  });
});

describe('a backing file system that is full', () => {
  const dir = scratchDir();
  const disk = dir.file('disk.img');
  const limit = 4 * MiB;
  let server: ServerProcess;

  beforeAll(async () => {
    sparseImage(disk, SIZE, [{ offset: 0, length: MiB }]);
    // The file may not grow past 4 MiB: writes beyond fail as on a full file system (EFBIG; Node ignores SIGXFSZ).
    server = await startServerProcess(['serve', '--disk', disk, '--socket', dir.file('nbd.sock')], 20_000, ['prlimit', `--fsize=${limit}`]);
  });
  afterAll(async () => {
    expect(await server.stop()).toBe(0);
    dir.cleanup();
  });

  it('fails a write that finds no room with ENOSPC, as the spec maps EDQUOT and EFBIG, and keeps serving', async () => {
    await nbdshScript(
      server.uri('source'),
      `
expect_errno(errno.ENOSPC, lambda: h.pwrite(b"\\x33" * 65536, ${limit + MiB}))
h.pwrite(b"\\x44" * 65536, ${MiB})
assert h.pread(65536, ${MiB}) == b"\\x44" * 65536
h.flush()
`,
    );
    expect(server.stderr()).toMatch(/WRITE \d+\+65536 failed \(ENOSPC to the client\): EFBIG/);
  });
});
