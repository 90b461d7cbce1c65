/**
 * Constant-time comparison of secrets. It imports nothing, so sandbox
 * processes (which run without npm) can load it.
 *
 * @module
 */

/**
 * Compares two secrets in time that depends only on their lengths, so a
 * client cannot learn a token byte by byte from response times.
 *
 * @param a one secret
 * @param b the other
 * @returns whether they are equal
 */
export function timingSafeEqual(a: string, b: string): boolean {
  const ea = new TextEncoder().encode(a);
  const eb = new TextEncoder().encode(b);
  const n = Math.max(ea.length, eb.length);
  let diff = ea.length ^ eb.length;
  for (let i = 0; i < n; i++) diff |= (ea[i] ?? 0) ^ (eb[i] ?? 0);
  return diff === 0;
}
