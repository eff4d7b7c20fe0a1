/**
 * @module What every view gets from the shell: how to report a failure (a refused token signs out).
 */
export interface ViewContext {
  /** Shows a failed call in `where` (or as a notice); a refused token ends the session. */
  failed(error: unknown, where?: HTMLElement): void;
  /** A short notice for the screen reader and the eye (`role=status`). */
  notice(text: string): void;
}
