import { cpSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** One instruction of a Dockerfile: its keyword (upper case) and the rest of its line, continuations joined. */
export interface DockerInstruction {
  keyword: string;
  args: string;
}

/** A stage: what follows one FROM, up to the next. */
export interface DockerStage {
  from: string;
  instructions: DockerInstruction[];
}

/** The stages of a Dockerfile (no parser directives or heredocs: ours has none). */
export function parseDockerfile(text: string): DockerStage[] {
  const stages: DockerStage[] = [];
  const logical = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  for (const line of logical) {
    const [keyword, ...rest] = line.split(/\s+/);
    const instruction = { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    if (instruction.keyword === 'FROM') stages.push({ from: instruction.args, instructions: [] });
    else if (stages.length === 0) throw new Error(`Dockerfile: ${keyword} before the first FROM`);
    else stages[stages.length - 1].instructions.push(instruction);
  }
  return stages;
}

/**
 * The build context `docker build` would send: the files under `root` that no
 * .dockerignore pattern excludes. Patterns are root-relative; `*` stays within
 * a path element, `**` spans any; a pattern that names a directory excludes
 * everything below it. (Exceptions with `!` are not supported: ours has none.)
 */
export function contextFilter(root: string): (path: string) => boolean {
  let patterns: string[] = [];
  try {
    patterns = readFileSync(join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
  } catch {
    // No .dockerignore: everything is sent.
  }
  if (patterns.some((p) => p.startsWith('!'))) throw new Error('.dockerignore exceptions (!) are not supported by this rehearsal');
  const regexes = patterns.map((p) => {
    const body = p
      .replace(/^\/+|\/+$/g, '')
      .split(/(\*\*\/|\*\*|\*|\?)/)
      .map((part) => {
        if (part === '**/') return '(?:.*/)?';
        if (part === '**') return '.*';
        if (part === '*') return '[^/]*';
        if (part === '?') return '[^/]';
        return part.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      })
      .join('');
    return new RegExp(`^${body}(?:/.*)?$`);
  });
  return (path) => {
    const rel = relative(root, path);
    return rel === '' || !regexes.some((r) => r.test(rel));
  };
}

/** Copies `source` (a file or directory under `root`) to `target` as a COPY from the build context would. */
export function copyFromContext(root: string, source: string, target: string, inContext: (path: string) => boolean): void {
  const from = join(root, source);
  if (!inContext(from)) throw new Error(`COPY ${source}: excluded from the build context by .dockerignore`);
  cpSync(from, target, { recursive: true, filter: (path) => inContext(path) });
}
