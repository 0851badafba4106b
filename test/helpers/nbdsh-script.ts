import { runTool } from './run-tool.js';

/** Python that every script gets: `h` connected with libnbd's own checks off, and `expect_errno(code, fn)`. */
function prelude(uri: string): string {
  return [
    'import errno, nbd',
    'h.set_strict_mode(0)',
    'h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)',
    `h.connect_uri(${JSON.stringify(uri)})`,
    'size = h.get_size()',
    'def expect_errno(code, fn):',
    '    try:',
    '        fn()',
    '    except nbd.Error as e:',
    // libnbd's python binding gives the errno as its name ("EINVAL"), older ones as a number
    '        got = e.errno if isinstance(e.errno, int) else getattr(errno, str(e.errno), None)',
    '        assert got == code, "expected %s, got %s (%s)" % (errno.errorcode[code], e.errno, e.string)',
    '        return',
    '    raise AssertionError("expected %s, but the request succeeded" % errno.errorcode[code])',
  ].join('\n');
}

/**
 * Runs a python body inside nbdsh against `uri`, so the server's own answers
 * are what is tested; fails on a python error. Returns what the body printed.
 */
export async function nbdshScript(uri: string, body: string, timeoutMs = 60_000): Promise<string> {
  const result = await runTool('nbdsh', ['-c', `${prelude(uri)}\n${body}\nprint("OK")`], { timeoutMs });
  if (result.code !== 0 || !result.stdout.includes('OK')) {
    throw new Error(`nbdsh script failed (${result.code}):\n${result.stderr}${result.stdout}`);
  }
  return result.stdout;
}
