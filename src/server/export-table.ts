import { BASE_ALLOCATION, TransmissionFlag, contextNameProblem, type ExportDescriptor, type ExportRegistry } from 'nbd-protocol-ts';
import type { BlockExport, ExportCapabilities } from './block-export.js';

/** The exports a server offers. Dynamic: an export may appear or vanish (e.g. `source` after finish). */
export interface ExportTable {
  list(): readonly BlockExport[];
  get(name: string): BlockExport | undefined;
}

export function transmissionFlagsOf(caps: ExportCapabilities): number {
  let flags = TransmissionFlag.SEND_DF;
  if (caps.readOnly) flags |= TransmissionFlag.READ_ONLY;
  if (caps.flush) flags |= TransmissionFlag.SEND_FLUSH;
  if (caps.fua) flags |= TransmissionFlag.SEND_FUA;
  if (caps.rotational) flags |= TransmissionFlag.ROTATIONAL;
  if (caps.trim) flags |= TransmissionFlag.SEND_TRIM;
  if (caps.writeZeroes) flags |= TransmissionFlag.SEND_WRITE_ZEROES;
  if (caps.fastZero) flags |= TransmissionFlag.SEND_FAST_ZERO;
  if (caps.multiConn) flags |= TransmissionFlag.CAN_MULTI_CONN;
  if (caps.cache) flags |= TransmissionFlag.SEND_CACHE;
  return flags;
}

export function describeExport(exp: BlockExport): ExportDescriptor {
  const caps = exp.capabilities();
  for (const { name } of exp.metaContexts ?? []) {
    const problem = contextNameProblem(name);
    if (problem !== undefined) throw new Error(`export ${exp.name} offers meta context ${name}: ${problem}`);
  }
  return {
    name: exp.name,
    description: exp.description,
    size: exp.size,
    transmissionFlags: transmissionFlagsOf(caps),
    blockSize: exp.blockSize,
    metaContexts: caps.blockStatus ? [BASE_ALLOCATION, ...(exp.metaContexts ?? []).map((context) => context.name)] : [],
  };
}

/** The handshake's view of the table: descriptors computed when asked, so they reflect the current phase. */
export function registryOf(table: ExportTable): ExportRegistry {
  return {
    list: () => table.list().map(describeExport),
    lookup: (name) => {
      const exp = table.get(name);
      return exp ? describeExport(exp) : undefined;
    },
  };
}

/** Exports that come and go while the server runs (the remapper drops `source` after finish). */
export class ExportList implements ExportTable {
  private readonly byName = new Map<string, BlockExport>();
  constructor(exports: readonly BlockExport[] = []) {
    for (const exp of exports) this.add(exp);
  }
  add(exp: BlockExport): void {
    this.byName.set(exp.name, exp);
  }
  /** New clients no longer see it; connections already attached keep it until they leave. */
  remove(name: string): void {
    this.byName.delete(name);
  }
  list(): readonly BlockExport[] {
    return [...this.byName.values()];
  }
  get(name: string): BlockExport | undefined {
    return this.byName.get(name);
  }
}
