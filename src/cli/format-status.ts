import type { MigrationStatus } from '../control/migration-control.js';
import { formatBytes } from '../format/bytes.js';

/** camelCase → "camel case" for fields this formatter has no line for. */
function words(key: string): string {
  return key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
}

function render(value: unknown): string {
  if (typeof value === 'number') return value.toLocaleString('en-US');
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (value === null || value === undefined) return '-';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Every field as "label: value", nested objects indented: for fields without a summary line. */
function formatFields(status: Record<string, unknown>, indent: string): string[] {
  const lines: string[] = [];
  for (const [key, value] of Object.entries(status)) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      lines.push(`${indent}${words(key)}:`, ...formatFields(value as Record<string, unknown>, indent + '  '));
    } else {
      lines.push(`${indent}${words(key)}: ${render(value)}`);
    }
  }
  return lines;
}

const num = (value: unknown): number => (typeof value === 'number' ? value : 0);
/** A figure the server did not report (an older server than this CLI) shows as `?`, never as a made-up 0. */
const count = (value: unknown): string => (typeof value === 'number' ? value.toLocaleString('en-US') : '?');

/** The fields the summary below presents; anything else is listed after it as it is. */
const SUMMARISED = new Set([
  'phase', 'safe', 'blockSize', 'diskBlocks', 'destinationBlocks', 'declaredFree', 'released', 'releasedAsHoles', 'confirmed', 'atRisk', 'checkpointNote', 'originalsOverwritten',
  'revisitCache', 'heldInRam', 'heldInRamBytes', 'cacheBytes', 'cacheLimitBytes', 'heldAsZero', 'spilled', 'landed',
  'destinationLanded', 'enospc', 'lastEnospc', 'sourceClients', 'destinationClients', 'clientsDroppedStalled', 'finish', 'stateRecords', 'durability', 'diskAlsoAttached',
]);

/**
 * A status for a person: what phase the migration is in, what the source
 * still owes, where the destination's data is, and anything that needs
 * action (refused writes, originals at risk). `status --json` has every field.
 */
export function formatStatus(status: MigrationStatus): string {
  const s = status as Record<string, unknown>;
  if (typeof s.blockSize !== 'number') return formatFields(s, '').join('\n');
  const B = s.blockSize;
  const blocks = (value: unknown): string => `${count(value)} (${formatBytes(num(value) * B)})`;
  const lines = [
    `phase:        ${String(s.phase)}${s.safe ? ' (safe mode: unconfirmed originals are never overwritten)' : ''}`,
    `layout:       disk ${count(s.diskBlocks)} blocks (${formatBytes(num(s.diskBlocks) * B)}) → destination ${count(s.destinationBlocks)} blocks (${formatBytes(num(s.destinationBlocks) * B)}); block size ${formatBytes(B)}`,
    s.phase === 'unsealed'
      ? `source:       declared free ${blocks(s.declaredFree)} by TRIM (fstrim, blkdiscard): released when sealed`
      : `source:       released ${blocks(s.released)}, confirmed by checkpoint ${count(s.confirmed)}, originals overwritten ${count(s.originalsOverwritten)}`,
  ];
  if (num(s.releasedAsHoles) > 0) lines.push(`              of them holes ${blocks(s.releasedAsHoles)}: block status told a client, and they read as zeroes`);
  if (typeof s.checkpointNote === 'string') lines.push(`              last checkpoint's note: ${s.checkpointNote}`);
  if (num(s.atRisk) > 0) lines.push(`              at risk: ${count(s.atRisk)} overwritten original(s) not confirmed — run \`nbd-remapper checkpoint\` after syncing the copy`);
  const revisit = (s.revisitCache ?? {}) as Record<string, unknown>;
  lines.push(
    `revisit:      ${count(revisit.originals)} original(s) kept, ${formatBytes(num(revisit.bytes))} of ${formatBytes(num(revisit.limitBytes))}; re-reads served ${count(revisit.hits)}, lost ${count(revisit.misses)}`,
  );
  const limit = num(s.cacheLimitBytes);
  const percent = limit > 0 ? Math.round((100 * num(s.heldInRamBytes)) / limit) : 0;
  // RAM a FLUSH's commit in flight still writes from, after its blocks moved on: it counts against the cache too.
  const retained = num(s.cacheBytes) - num(s.heldInRamBytes);
  lines.push(
    `destination:  held in RAM ${count(s.heldInRam)} (${formatBytes(num(s.heldInRamBytes))}, ${percent}% of the ${formatBytes(limit)} cache${retained > 0 ? `; ${formatBytes(retained)} more until a commit in flight is done` : ''}), as zeroes ${count(s.heldAsZero)}, spilled ${count(s.spilled)}, landed ${count(s.landed)}`,
    `              ${landedLine(s)}`,
  );
  if (num(s.enospc) > 0) {
    lines.push(`refused:      ${count(s.enospc)} destination write(s) failed with ENOSPC (cache and free slots full)${s.lastEnospc ? `; last: ${String(s.lastEnospc)}` : ''}`);
    lines.push('              fix: read more of source (copy on), run a checkpoint, or restart with a larger --cache');
  }
  lines.push(
    `clients:      source ${count(s.sourceClients)}, destination ${count(s.destinationClients)}` +
      (num(s.clientsDroppedStalled) > 0 ? `; ${count(s.clientsDroppedStalled)} disconnected for holding memory others waited for (--stall-timeout; the log names them)` : ''),
  );
  const finish = s.finish as { done?: number; total?: number } | null | undefined;
  if (finish) lines.push(`finish:       ${count(finish.done)} of ${count(finish.total)} block(s) moved`);
  lines.push(...durabilityLines(s));
  if (typeof s.diskAlsoAttached === 'string') lines.push(`WARNING:      ${s.diskAlsoAttached}`);
  const rest = Object.fromEntries(Object.entries(s).filter(([key]) => !SUMMARISED.has(key)));
  if (Object.keys(rest).length > 0) lines.push(...formatFields(rest, ''));
  return lines.join('\n');
}

/** Whether the old layout can still be restored; once finished, that the new one is there. */
function landedLine(s: Record<string, unknown>): string {
  if (s.phase === 'finished') return 'finished: the disk holds the new layout; destination is a plain view of it';
  return s.destinationLanded ? 'destination data has landed: the old layout can no longer be restored' : 'nothing has landed yet: the disk still holds the old layout';
}

interface Durability {
  /** pathProblem is absent in the status of a server older than this CLI. */
  journal: { path: string; bytes: number; records: number; lastCommit: string | null; pathProblem?: string | null } | null;
  heldInRamVolatile: number;
  recordsVolatile: number;
  /** Absent in the status of a server older than this CLI. */
  failure?: { message: string; fix: string; final?: boolean } | null;
  hint: string | null;
}

/** What a crash now would lose, and where the durable record is. */
function durabilityLines(s: Record<string, unknown>): string[] {
  const d = s.durability as Durability | undefined;
  if (!d) return [];
  const lines: string[] = [];
  lines.push(
    d.journal
      ? `state file:   ${d.journal.path} (${formatBytes(d.journal.bytes)}, ${count(d.journal.records)} record(s), last commit ${d.journal.lastCommit ?? '-'})`
      : 'state file:   none — nothing survives a restart',
  );
  if (d.journal?.pathProblem) lines.push(`WARNING:      the state file is not where a restart looks: ${d.journal.pathProblem}`);
  const stopped = d.failure != null && d.failure.final !== false;
  if (d.failure) {
    lines.push(stopped ? `FAILED:       ${d.failure.message}` : `commit failed: ${d.failure.message} (the next FLUSH tries again)`, `              fix: ${d.failure.fix}`);
  }
  const volatile = num(d.heldInRamVolatile) + num(d.recordsVolatile);
  lines.push(
    volatile === 0
      ? 'volatile:     nothing — a crash now loses no acknowledged write'
      : `volatile:     ${count(d.heldInRamVolatile)} RAM block(s) and ${count(d.recordsVolatile)} record(s) not yet durable ` +
          (stopped ? '(and they cannot become durable: state commits have stopped)' : '(the next FLUSH makes them so)'),
  );
  if (d.hint) lines.push(`hint:         ${d.hint}`);
  return lines;
}
