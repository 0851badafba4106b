/**
 * Source reads sent from the page cache before sealing whose clients may not
 * have read them yet (SourceView.fileSpan). The socket holds the disk's
 * pages, not a copy, until then; once sealed, a destination write may land
 * on those bytes, and a reply read after it would carry destination data
 * (G2). So seal waits until there are none.
 */
export class UnreadSourceReplies {
  private unread = 0;
  private waiters: Array<() => void> = [];

  get count(): number {
    return this.unread;
  }

  /** One more: the returned function says it has been read (or can no longer be), once. */
  take(): () => void {
    this.unread++;
    let taken = false;
    return () => {
      if (taken) return;
      taken = true;
      this.unread--;
      if (this.unread === 0) for (const wake of this.waiters.splice(0)) wake();
    };
  }

  /** True once there are none, false if some are still unread after `graceMs`. */
  async noneWithin(graceMs: number): Promise<boolean> {
    if (this.unread === 0) return true;
    let wake: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const none = await Promise.race([
      new Promise<true>((resolve) => {
        wake = () => resolve(true);
        this.waiters.push(wake);
      }),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    this.waiters = this.waiters.filter((w) => w !== wake);
    return none;
  }
}
