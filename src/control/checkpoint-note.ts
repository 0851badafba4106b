/** A checkpoint's note is a copier's progress (a position, a plan's hash): small. Bytes of UTF-8. */
export const MAX_NOTE_BYTES = 4096;

/** The most bytes a JSON body carrying such a note takes: every byte escaped as \u00XX, plus the wrapping. */
export const MAX_NOTE_BODY_BYTES = MAX_NOTE_BYTES * 6 + 64;
