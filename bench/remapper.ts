/** Our server with the remap engine, driven as a person drives it: serve with a map, then seal / status / copy / finish through the CLI. */
import { join } from 'node:path';
import { CLI } from './config.js';
import { writeMap, type MapExtent } from './images.js';
import { run, startServer, stopServer, waitForSocket, type RunResult, type Server } from './proc.js';
import { uriOf } from './peers.js';

export interface RemapperOptions {
  disk: string;
  /** Scratch directory private to this server (sockets, map, state). */
  dir: string;
  /** Extents of the new layout; identity when absent. */
  map?: MapExtent[];
  cache?: string;
  revisitCache?: string;
}

let stateFlag: Promise<boolean> | undefined;

/** Whether this build's `serve` takes `--state PATH` (durable state, issue 4). */
export function supportsStateFlag(): Promise<boolean> {
  stateFlag ??= run(process.execPath, [CLI, 'serve', '--help']).then(
    ({ stdout }) => /--state\b/.test(stdout),
    () => false,
  );
  return stateFlag;
}

export class Remapper {
  readonly control: string;
  readonly statePath: string;

  private constructor(
    private readonly server: Server,
    control: string,
    statePath: string,
  ) {
    this.control = control;
    this.statePath = statePath;
  }

  static async start(options: RemapperOptions): Promise<Remapper> {
    const socket = join(options.dir, 'nbd.sock');
    const control = join(options.dir, 'control.sock');
    const statePath = join(options.dir, 'remap.state');
    const args = [CLI, 'serve', '--disk', options.disk, '--socket', socket, '--control', control];
    if (options.map) {
      const mapFile = join(options.dir, 'map.json');
      writeMap(mapFile, options.map);
      args.push('--map', mapFile);
    }
    if (options.cache) args.push('--cache', options.cache);
    if (options.revisitCache) args.push('--revisit-cache', options.revisitCache);
    if (await supportsStateFlag()) args.push('--state', statePath);
    const server = startServer(process.execPath, args, socket);
    await waitForSocket(server);
    await waitForSocket(server, control);
    return new Remapper(server, control, statePath);
  }

  get source(): string {
    return uriOf(this.server.socket, 'source');
  }

  get destination(): string {
    return uriOf(this.server.socket, 'destination');
  }

  private cli(args: string[]): Promise<RunResult> {
    return run(process.execPath, [CLI, ...args, '--control', this.control]);
  }

  seal(): Promise<RunResult> {
    return this.cli(['seal']);
  }

  /** The copier's promise that what it read so far is durably copied: released blocks become confirmed, so writes may land on them. */
  checkpoint(): Promise<RunResult> {
    return this.cli(['checkpoint']);
  }

  finish(): Promise<RunResult> {
    return this.cli(['finish']);
  }

  async status(): Promise<Record<string, unknown>> {
    return JSON.parse((await this.cli(['status', '--json'])).stdout) as Record<string, unknown>;
  }

  /** `nbd-remapper copy` of the whole source onto the destination. */
  copy(): Promise<RunResult> {
    return run(process.execPath, [CLI, 'copy', '--from', this.source, '--to', this.destination]);
  }

  stop(): Promise<void> {
    return stopServer(this.server);
  }

  log(): string {
    return this.server.log();
  }
}
