import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';
import { useCleanups } from '../helpers/cleanups.js';
import { contextFilter, copyFromContext, parseDockerfile } from '../helpers/dockerfile.js';
import { mustRun, runTool, TOOL_ENV } from '../helpers/run-tool.js';
import { randomImage, scratchDir } from '../helpers/scratch.js';
import { startServerProcess } from '../helpers/server-process.js';

const cleanup = useCleanups();
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/**
 * There is no Docker daemon on the machines the tests run on, so the image is
 * never built here. This replays docker/Dockerfile's build stage outside a
 * container — the build context as .dockerignore leaves it, each COPY, each
 * RUN but the system packages (.ci/run installs the same compilers) — and runs
 * the image's ENTRYPOINT from the result: a file the image needs but the
 * Dockerfile does not copy, or one its clean-up deletes, fails it.
 */
it('the Dockerfile build stage, replayed outside a container, yields a server that serves both exports', { timeout: 360_000 }, async () => {
  const [build, final] = parseDockerfile(readFileSync(join(ROOT, 'docker/Dockerfile'), 'utf8'));
  expect(final, 'a build stage and a runtime stage').toBeDefined();
  const scratch = scratchDir('nbd-remapper-docker-');
  cleanup(() => scratch.cleanup());
  const work = scratch.file('image');
  const inContext = contextFilter(ROOT);
  let workdir: string | undefined;
  const ran: string[] = [];
  for (const { keyword, args } of build.instructions) {
    if (keyword === 'WORKDIR') workdir = args;
    else if (keyword === 'COPY') {
      const parts = args.split(/\s+/);
      const target = parts.pop()!;
      for (const source of parts) copyFromContext(ROOT, source, target.endsWith('/') ? join(work, target, basename(source)) : join(work, target), inContext);
    } else if (keyword === 'RUN' && !/\bapt-get\b/.test(args)) {
      const result = await runTool('sh', ['-c', args], { timeoutMs: 300_000, cwd: work });
      expect(result.code, `RUN ${args}\n${result.stderr}${result.stdout}`).toBe(0);
      ran.push(args);
    }
  }
  expect(ran.some((r) => /\bnpm ci\b/.test(r)), 'the build stage installs and builds with npm ci').toBe(true);
  expect(workdir, 'the build stage sets WORKDIR').toBeDefined();

  const copied = final.instructions.find((i) => i.keyword === 'COPY' && i.args.startsWith('--from='));
  expect(copied?.args, 'the runtime stage takes the build stage’s directory').toMatch(new RegExp(`^--from=\\S+ ${workdir}/? `));
  const entrypoint = JSON.parse(final.instructions.find((i) => i.keyword === 'ENTRYPOINT')!.args) as string[];
  expect(entrypoint[0]).toBe('node');
  const script = entrypoint[1].replace(workdir!, work);
  expect(existsSync(script), `ENTRYPOINT script ${entrypoint[1]} is in the image`).toBe(true);
  expect(existsSync(join(work, 'src')), 'the TypeScript sources are not in the image').toBe(false);

  expect(await mustRun(process.execPath, [script, '--help'])).toMatch(/serve/);
  const disk = scratch.file('disk.img');
  randomImage(disk, 8 * 1024 * 1024);
  const server = await startServerProcess(
    ['serve', '--disk', disk, '--socket', scratch.file('nbd.sock'), '--control', scratch.file('control.sock'), '--state', scratch.file('state')],
    20_000,
    [],
    script,
  );
  cleanup(async () => {
    await server.stop();
  });
  const listed = JSON.parse(await mustRun('nbdinfo', ['--list', '--json', server.uri('source')])) as { exports: Array<{ 'export-name': string }> };
  expect(listed.exports.map((e) => e['export-name'])).toEqual(['source', 'destination']);
  // The native addon came through the build too: without it the server says so when it starts.
  expect(server.stderr()).not.toMatch(/linux-io addon did not load/);
  expect(await server.stop()).toBe(0);
});
