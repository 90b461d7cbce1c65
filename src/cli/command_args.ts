/**
 * The prologue every `arcp` command shares: parse its arguments, or print
 * its usage and say which exit code to use.
 *
 * @module
 */

/**
 * Parses a command's arguments from the environment-aware parser, printing
 * the usage for `--help` (exit 0) or a bad flag (exit 2).
 *
 * @param command the command's name, for messages
 * @param usage its usage text
 * @param parse parses the arguments; returns `help` for `--help`, throws on a bad flag
 * @returns the parsed arguments, or the exit code to return at once
 */
export function parseCommandArgs<T>(
  command: string,
  usage: string,
  parse: () => T | "help",
): T | number {
  let parsed: T | "help";
  try {
    parsed = parse();
  } catch (err) {
    console.error(`arcp ${command}: ${(err as Error).message}\n${usage}`);
    return 2;
  }
  if (parsed === "help") {
    console.log(usage);
    return 0;
  }
  return parsed;
}
