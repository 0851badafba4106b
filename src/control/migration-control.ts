/**
 * What the control plane can ask of a running migration. The remapping
 * engine implements it; the control plane knows nothing else of remapping.
 */
export interface MigrationControl {
  /** A JSON-able snapshot for `status`. */
  status(): MigrationStatus;
  seal(): Promise<void>;
  /** `note`: the copier's progress, kept with the state (status shows it as checkpointNote). */
  checkpoint(note?: string): Promise<void>;
  finish(onProgress: (progress: FinishProgress) => void): Promise<void>;
}

export interface FinishProgress {
  done: number;
  total: number;
}

/** Fields every status has; the engine adds its own counters. */
export interface MigrationStatus {
  phase: string;
  [key: string]: unknown;
}

/** A refusal the person can act on (finish while source is attached, seal twice, …). */
export class ControlRefusal extends Error {
  override readonly name = 'ControlRefusal';
  constructor(
    message: string,
    readonly fix: string,
  ) {
    super(message);
  }
}
