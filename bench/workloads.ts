/** The client workloads, each timing one run of a real NBD client against a URI. */
import { MiB, RANDOM_SECONDS } from './config.js';
import { run } from './proc.js';

export const mbPerSecond = (bytes: number, seconds: number): number => bytes / seconds / 1e6;

/** nbdcopy of a whole export into null: (reads every byte once); seconds. */
export async function seqRead(uri: string, connections?: number): Promise<number> {
  return (await run('nbdcopy', [...(connections ? ['-C', String(connections)] : []), uri, 'null:'])).seconds;
}

/** nbdcopy of a local file onto the start of an export; seconds. */
export async function seqWrite(file: string, uri: string, connections?: number): Promise<number> {
  return (await run('nbdcopy', [...(connections ? ['-C', String(connections)] : []), file, uri])).seconds;
}

/** nbdcopy from one export to another; seconds. */
export async function copyBetween(from: string, to: string, flush = false): Promise<number> {
  return (await run('nbdcopy', [...(flush ? ['--flush'] : []), from, to])).seconds;
}

/** fio's nbd engine, 4 KiB random I/O at queue depth 16 over the first `size` bytes, for RANDOM_SECONDS; IOPS. */
export async function fioRandom(uri: string, rw: 'randread' | 'randwrite', size: number): Promise<number> {
  const { stdout } = await run('fio', [
    '--name=bench', '--ioengine=nbd', `--uri=${uri}`, `--rw=${rw}`, '--bs=4k', '--iodepth=16',
    `--size=${size}`, '--time_based', `--runtime=${RANDOM_SECONDS}`, '--output-format=json',
  ]);
  const job = (JSON.parse(stdout.slice(stdout.indexOf('{'))) as { jobs: Array<Record<'read' | 'write', { iops: number }>> }).jobs[0];
  return rw === 'randread' ? job.read.iops : job.write.iops;
}

/** Reads [offset, offset+length) once, 1 MiB requests, 8 in flight (on our source this releases those blocks); seconds. */
export async function readRange(uri: string, offset: number, length: number): Promise<number> {
  return (
    await run('fio', [
      '--name=release', '--ioengine=nbd', `--uri=${uri}`, '--rw=read', '--bs=1M', '--iodepth=8',
      `--offset=${offset}`, `--size=${length}`, '--output-format=json',
    ])
  ).seconds;
}

export type DurabilityMode = 'flush' | 'fua';

/**
 * python3-libnbd: 256 KiB writes of random bytes over [offset, offset+length).
 * `flush`: four writes in flight (1 MiB), then a FLUSH, repeated. `fua`: every
 * write carries FUA, four in flight. Prints the seconds the writes took.
 */
const DURABLE_WRITES_PY = `
import nbd, os, sys, time
uri, offset, length, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
REQ = 256 * 1024
PER_FLUSH = ${MiB} // REQ
h = nbd.NBD()
h.connect_uri(uri)
buf = nbd.Buffer.from_bytearray(bytearray(os.urandom(REQ)))
flags = nbd.CMD_FLAG_FUA if mode == 'fua' else 0
def drain(limit):
    while h.aio_in_flight() > limit:
        h.poll(-1)
started = time.monotonic()
n = 0
for at in range(offset, offset + length, REQ):
    h.aio_pwrite(buf, at, flags=flags)
    n += 1
    if mode == 'flush':
        if n % PER_FLUSH == 0:
            drain(0)
            h.flush()
    else:
        drain(PER_FLUSH - 1)
drain(0)
if mode == 'flush':
    h.flush()
print(time.monotonic() - started)
h.shutdown()
`;

export async function durableWrites(uri: string, offset: number, length: number, mode: DurabilityMode): Promise<number> {
  const { stdout } = await run('python3', ['-c', DURABLE_WRITES_PY, uri, String(offset), String(length), mode]);
  return Number(stdout.trim());
}
