/** Durable migration state: the journal file, recovery, and the entry points the CLI uses. See docs/durability.md. */
export { defaultStatePath, resolveStatePath, openMigration, finishOffline, type OpenMigrationOptions, type OpenedMigration, type FinishOfflineOptions, type MigrationDisk } from './open-migration.js';
export { StateError, StateCorruptError, NotAStateFileError, StateMismatchError, StateUnusableError, StateInUseError, StateWriteError } from './state-errors.js';
export { FileStateJournal, type FileJournalOptions, type OpenedState } from './file-state-journal.js';
export { DurableState } from './durable-state.js';
export { nodeStateFs, lockPathOf, type StateFs, type StateFile, type StateLock } from './state-fs.js';
export type { StateIdentity } from './state-identity.js';
