/**
 * Node's `fs.existsSync` never throws; Deno's throws `NotCapable` for the
 * special files it reserves to `--allow-all`, and playwright-core probes one
 * such file (`/proc/sys/fs/binfmt_misc/WSLInterop`, to detect WSL) as it
 * loads. Imported before playwright-core, this restores Node's answer
 * (false) so the browser tests run with the test task's own permissions.
 *
 * @module
 */
import fs from "node:fs";

const existsSync = fs.existsSync;
fs.existsSync = (path: fs.PathLike): boolean => {
  try {
    return existsSync(path);
  } catch {
    return false;
  }
};
