/**
 * The smallest `deno run` there is: prints `ready` and exits. The figures
 * time spawn → this line as the floor under starting any process per job.
 *
 * @module
 */
console.log("ready");
