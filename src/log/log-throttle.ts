/** Logs the first occurrences of a repeated event, then every 1000th, so a storm cannot flood the log. */
export class LogThrottle {
  private count = 0;
  constructor(private readonly emit: (message: string) => void) {}
  note(message: string): void {
    this.count++;
    if (this.count <= 10 || this.count % 1000 === 0) this.emit(this.count > 10 ? `${message} (${this.count} times so far)` : message);
  }
}
