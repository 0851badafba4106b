import type { MigrationStatus } from '../control/migration-control.js';

/** camelCase → "camel case" for fields this formatter has no label for. */
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

/** A status for a person: one "label: value" line per field, nested objects indented, phase first. */
export function formatStatus(status: MigrationStatus, indent = ''): string {
  const lines: string[] = [];
  const entries = Object.entries(status).sort(([a], [b]) => (a === 'phase' ? -1 : b === 'phase' ? 1 : 0));
  for (const [key, value] of entries) {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      lines.push(`${indent}${words(key)}:`);
      lines.push(formatStatus(value as MigrationStatus, indent + '  '));
    } else {
      lines.push(`${indent}${words(key)}: ${render(value)}`);
    }
  }
  return lines.join('\n');
}
