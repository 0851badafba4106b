/** With --control: a checkpoint (and a FLUSH, and a pause of the pipeline) per this many bytes copied. */
export const DEFAULT_CHECKPOINT_EVERY = 1024 * 1024 * 1024;
