const dir = await Deno.makeTempDir();
const kv = await Deno.openKv(`${dir}/x.kv`);
const t: number[] = [];
for (let i = 0; i < 300; i++) {
  const t0 = performance.now();
  await kv.atomic().set(["a", i], { x: "y".repeat(500) }).set(["b", i], 1).commit();
  t.push(performance.now() - t0);
}
t.sort((a, b) => a - b);
console.log("kv commit p50", t[150].toFixed(2), "p99", t[297].toFixed(2));
kv.close();
