/**
 * Throwaway TLS material for tests: a CA made on the spot and a server
 * certificate it signed for `localhost` and `127.0.0.1`, made with the
 * machine's `openssl`. Tests that need it are skipped where no `openssl` runs.
 *
 * @module
 */

/** Whether an `openssl` binary runs here. */
export const haveOpenssl: boolean = await new Deno.Command("openssl", {
  args: ["version"],
  stdout: "null",
  stderr: "null",
}).output().then((o) => o.success, () => false);

/** PEM texts of a test CA and a server certificate it signed, and where they were written. */
export interface TestCertificates {
  /** The CA certificate a client trusts (PEM). */
  ca: string;
  /** The server certificate (PEM). */
  cert: string;
  /** The server certificate's private key (PEM). */
  key: string;
  /** Path of `ca.pem` in the directory. */
  caPath: string;
  /** Path of `cert.pem` in the directory. */
  certPath: string;
  /** Path of `key.pem` in the directory. */
  keyPath: string;
}

/**
 * Makes a CA and a server certificate for `localhost` and `127.0.0.1`
 * (P-256 keys, valid one day) in a directory.
 *
 * @param dir where `ca.pem`, `cert.pem` and `key.pem` are written
 * @returns the PEM texts and their paths
 * @throws {Error} naming the `openssl` step that failed, with its stderr
 * @example
 * ```ts ignore
 * import { testCertificates } from "./tls.ts";
 * const { certPath, keyPath } = await testCertificates(await Deno.makeTempDir());
 * ```
 */
export async function testCertificates(dir: string): Promise<TestCertificates> {
  const openssl = async (...args: string[]) => {
    const out = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    })
      .output();
    if (!out.success) {
      throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
    }
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await openssl(
    "req",
    "-x509",
    ...ec,
    "-days",
    "1",
    "-subj",
    "/CN=arcp-test-ca",
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
  );
  await openssl("req", ...ec, "-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "leaf.csr");
  await Deno.writeTextFile(
    `${dir}/ext.cnf`,
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
  );
  await openssl(
    "x509",
    "-req",
    "-in",
    "leaf.csr",
    "-CA",
    "ca.pem",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    "ext.cnf",
    "-out",
    "cert.pem",
  );
  const [caPath, certPath, keyPath] = ["ca.pem", "cert.pem", "key.pem"].map((f) => `${dir}/${f}`);
  return {
    ca: await Deno.readTextFile(caPath),
    cert: await Deno.readTextFile(certPath),
    key: await Deno.readTextFile(keyPath),
    caPath,
    certPath,
    keyPath,
  };
}
