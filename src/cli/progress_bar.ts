/**
 * The live progress bar `arcp submit` draws on a terminal: one line that is
 * redrawn in place, with other output scrolling above it.
 *
 * @module
 */

/** What a bar shows: a `progress` event body. */
export interface Progress {
  /** Work done. */
  current: number;
  /** Work in all, when known. */
  total?: number;
  /** What is counted. */
  units?: string;
  /** What is happening. */
  message?: string;
}

/**
 * Draws a progress body as one line.
 *
 * @param progress the body
 * @param width the bar's width in characters
 * @returns e.g. `[######------] 2/4 ticks 50%`
 * @example
 * ```ts
 * import { progressBar } from "./progress_bar.ts";
 * progressBar({ current: 1, total: 4 }, 8); // "[##------] 1/4 25%"
 * ```
 */
export function progressBar(progress: Progress, width = 30): string {
  const { current, total, units, message } = progress;
  const tail = [units, message].filter((s) => s).join(" ");
  if (total === undefined || total <= 0) {
    return `[${current}${tail ? ` ${tail}` : ""}]`;
  }
  const ratio = Math.min(1, Math.max(0, current / total));
  const filled = Math.round(ratio * width);
  const counts = `${current}/${total}${units ? ` ${units}` : ""}`;
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${counts} ${
    Math.floor(ratio * 100)
  }%${message ? ` ${message}` : ""}`;
}

/** One line kept at the bottom of a terminal, redrawn in place. */
export class LiveLine {
  #write: (text: string) => void;
  #columns: () => number;
  #shown = "";

  /**
   * Creates a live line.
   *
   * @param write writes text to the terminal as is
   * @param columns the terminal's width (0 when unknown), so the line never wraps: a wrapped
   *   line cannot be redrawn in place
   */
  constructor(write: (text: string) => void, columns: () => number) {
    this.#write = write;
    this.#columns = columns;
  }

  /**
   * Replaces the live line.
   *
   * @param text the new line
   */
  show(text: string): void {
    const columns = this.#columns();
    // A terminal that reports no width (0) gets the whole line.
    this.#shown = columns > 1 ? text.slice(0, columns - 1) : text;
    this.#write(`\r\x1b[2K${this.#shown}`);
  }

  /**
   * Prints a line above the live line.
   *
   * @param line the line, without a newline
   */
  print(line: string): void {
    this.#write(this.#shown ? `\r\x1b[2K${line}\n${this.#shown}` : `${line}\n`);
  }

  /** Leaves the live line as it is and moves below it. */
  finish(): void {
    if (this.#shown) this.#write("\n");
    this.#shown = "";
  }
}
