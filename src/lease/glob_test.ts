import { equal, ok } from "assert";
import { compileGlob, globCovers, matchesAny } from "./glob.ts";

function matches(pattern: string, text: string): boolean {
  return compileGlob(pattern)(text);
}

Deno.test("a glob is anchored: it matches the whole text, never a substring", () => {
  ok(matches("/srv/data", "/srv/data"));
  ok(!matches("/srv/data", "/srv/data2"));
  ok(!matches("/srv/data", "/x/srv/data"));
  ok(!matches("srv", "/srv"));
  ok(matches("", ""));
  ok(!matches("", "a"));
});

Deno.test("`*` matches within one segment and never crosses `/`", () => {
  ok(matches("/srv/*.csv", "/srv/a.csv"));
  ok(matches("/srv/*.csv", "/srv/.csv"));
  ok(!matches("/srv/*.csv", "/srv/sub/a.csv"));
  ok(matches("/srv/*", "/srv/"));
  ok(!matches("/srv/*", "/srv"));
  ok(matches("openai/*", "openai/gpt-4o"));
  ok(!matches("openai/*", "openai/ft/gpt-4o"));
  ok(matches("https://*.example.com/**", "https://a.b.example.com/x"));
  ok(!matches("https://*.example.com/**", "https://evil.com/.example.com/x"));
  ok(matches("a*b*c", "abc"));
  ok(matches("a*b*c", "axxbyyc"));
  ok(!matches("a*b*c", "ax/bc"));
});

Deno.test("`?` matches exactly one character other than `/`, counting code points", () => {
  ok(matches("file?.txt", "file1.txt"));
  ok(!matches("file?.txt", "file.txt"));
  ok(!matches("file?.txt", "file12.txt"));
  ok(!matches("a?b", "a/b"));
  ok(matches("a?b", "a😀b"));
});

Deno.test("a trailing `**` matches zero or more segments, including the directory itself", () => {
  const m = compileGlob("/srv/data/**");
  ok(m("/srv/data"));
  ok(m("/srv/data/"));
  ok(m("/srv/data/a"));
  ok(m("/srv/data/a/b/c.txt"));
  ok(!m("/srv/database"));
  ok(!m("/srv/dat"));
  ok(!m("/srv"));
  ok(matches("https://api.example.com/**", "https://api.example.com/"));
  ok(matches("https://api.example.com/**", "https://api.example.com/v1/x?q=1"));
  ok(!matches("https://api.example.com/**", "https://api.example.com.evil.org/"));
});

Deno.test("a leading `**` matches zero or more leading segments", () => {
  ok(matches("**/secret", "secret"));
  ok(matches("**/secret", "a/secret"));
  ok(matches("**/secret", "/a/b/secret"));
  ok(!matches("**/secret", "a/notsecret"));
  ok(!matches("**/secret", "secret/a"));
});

Deno.test("an inner `**` matches zero or more whole segments", () => {
  const m = compileGlob("/a/**/b");
  ok(m("/a/b"));
  ok(m("/a/x/b"));
  ok(m("/a/x/y/z/b"));
  ok(!m("/a/xb"));
  ok(!m("/ab"));
  ok(!m("/a/b/c"));
  ok(matches("/a/**/**/b", "/a/b"));
  ok(matches("/a/**/**", "/a"), "repeated globstars mean one");
});

Deno.test("`**` alone matches everything; `**` inside a segment means `*`", () => {
  ok(matches("**", ""));
  ok(matches("**", "/any/thing/at/all"));
  ok(matches("/srv/**.csv", "/srv/a.csv"));
  ok(!matches("/srv/**.csv", "/srv/sub/a.csv"));
  ok(!matches("https://**.example.com/", "https://evil.com/x.example.com/"));
});

Deno.test("everything except `*`, `?` and `/` is literal, regex metacharacters included", () => {
  for (const lit of ["a.b", "a+b", "(a)", "[ab]", "{a,b}", "a|b", "^a$", "a\\b", "a%2Fb"]) {
    ok(matches(lit, lit), lit);
  }
  ok(!matches("a.b", "axb"));
  ok(!matches("[ab]", "a"));
  ok(!matches("{a,b}", "a"));
  ok(!matches("a+b", "aab"));
  ok(!matches("A", "a"), "case-sensitive");
});

Deno.test("matchesAny is true when one pattern matches", () => {
  ok(matchesAny(["search", "files/*"], "files/read"));
  ok(!matchesAny(["search", "files/*"], "files/a/read"));
  ok(!matchesAny([], "anything"));
});

Deno.test("globCovers: identical, wider and narrower globs", () => {
  ok(globCovers("/srv/**", "/srv/**"));
  ok(globCovers("/srv/**", "/srv/data/**"));
  ok(globCovers("/srv/**", "/srv/data/*.csv"));
  ok(globCovers("/srv/**", "/srv"));
  ok(globCovers("/srv/**", "/srv/*"));
  ok(globCovers("/srv/*", "/srv/a?c"));
  ok(globCovers("/srv/*", "/srv/*.csv"));
  ok(globCovers("**", "/anything/**"));
  ok(globCovers("*", "?"));
  ok(globCovers("a*", "a*b*"));
  ok(!globCovers("/srv/data/**", "/srv/**"));
  ok(!globCovers("/srv/*", "/srv/**"), "`/srv/a/b` escapes");
  ok(!globCovers("/srv/*.csv", "/srv/*"));
  ok(!globCovers("/srv/**", "/srv*"), "`/srvx` escapes");
  ok(globCovers("/srv/**", "/srv/../etc"), "`..` is text to a glob; no canonical path matches it");
  ok(!globCovers("?", "*"), "`*` may match the empty text");
  ok(!globCovers("*", "**"), "`**` crosses `/`");
  ok(!globCovers("/a/*/c", "/a/**/c"));
  ok(globCovers("/a/**/c", "/a/*/c"));
  ok(globCovers("/a/**/c", "/a/c"));
});

Deno.test("globCovers on names, URLs and literal children", () => {
  ok(globCovers("openai/*", "openai/gpt-4*"));
  ok(!globCovers("openai/*", "openai/**"));
  ok(globCovers("https://api.example.com/**", "https://api.example.com/v1/*"));
  ok(!globCovers("https://api.example.com/**", "https://api.example.com*"));
  ok(!globCovers("https://*.example.com/**", "https://*/**"));
  ok(globCovers("https://*.example.com/**", "https://a.example.com/**"));
  ok(globCovers("tool-*", "tool-read"));
  ok(!globCovers("tool-*", "tool/read"));
  ok(!globCovers("tool-read", "tool-*"));
});

Deno.test("globCovers is exact where a segment-by-segment check would be fooled", () => {
  // Each child segment fits some parent segment, but the counts differ.
  ok(!globCovers("/a/*/*", "/a/**"));
  // The parent's `*` absorbs a suffix the child fixes.
  ok(globCovers("*b", "a*b"));
  ok(!globCovers("*b", "a*"));
  // A glob whose only difference is a wildcard that can take `/` in one and not the other.
  ok(!globCovers("a/**/b", "a**b"), "`a**b` is `a*b`, which matches `ab`");
  ok(globCovers("a*b", "a**b"));
  // Overlapping stars: every `a?*` text is an `a*` text, not conversely.
  ok(globCovers("a*", "a?*"));
  ok(!globCovers("a?*", "a*"));
});

Deno.test("matching stays linear on patterns that make backtracking regexes explode", () => {
  // As a backtracking regex this pair takes longer than any test timeout.
  const m = compileGlob("*a".repeat(16) + "b");
  ok(!m("a".repeat(500)));
  ok(m("a".repeat(500) + "b"));
});

Deno.test("globCovers answers false once its budget runs out, and a shared budget spans calls", () => {
  // `?*a??...` is inside `*a??...`, but proving it means determinizing the
  // parent, which needs a state per pattern of recent `a`s.
  ok(globCovers("*a???", "?*a???"));
  equal(globCovers("*a" + "?".repeat(30), "?*a" + "?".repeat(30)), false);
  const budget = { steps: 50_000 };
  ok(globCovers("/a/**/x", "/a/*/x", budget));
  ok(budget.steps < 50_000, "a decided call spends steps");
  budget.steps = 0;
  equal(globCovers("/a/**/x", "/a/*/x", budget), false);
  // Cheap cases need no automaton and no budget.
  ok(globCovers("/a/**", "/a/b", budget));
  ok(globCovers("/a/*", "/a/*", budget));
});

/** A tiny seeded generator so the cross-check below is reproducible. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function allTexts(alphabet: string[], maxLen: number): string[] {
  const out = [""];
  let frontier = [""];
  for (let n = 0; n < maxLen; n++) {
    frontier = frontier.flatMap((t) => alphabet.map((c) => t + c));
    out.push(...frontier);
  }
  return out;
}

/**
 * The documented semantics, written independently of the module: split both
 * sides on `/`; a `**` segment eats any number of text segments; other
 * segments match one text segment each, `*` runs meaning any run of
 * characters and `?` one character.
 */
function reference(pattern: string, text: string): boolean {
  const segMatch = (p: string[], t: string[]): boolean => {
    if (p.length === 0) return t.length === 0;
    if (p[0] === "*") return segMatch(p.slice(1), t) || (t.length > 0 && segMatch(p, t.slice(1)));
    if (t.length === 0) return false;
    return (p[0] === "?" || p[0] === t[0]) && segMatch(p.slice(1), t.slice(1));
  };
  const segsMatch = (p: string[], t: string[]): boolean => {
    if (p.length === 0) return t.length === 0;
    if (p[0] === "**") {
      for (let k = 0; k <= t.length; k++) if (segsMatch(p.slice(1), t.slice(k))) return true;
      return false;
    }
    return t.length > 0 && segMatch([...p[0].replace(/\*+/g, "*")], [...t[0]]) &&
      segsMatch(p.slice(1), t.slice(1));
  };
  return segsMatch(pattern.split("/"), text.split("/"));
}

Deno.test("matching agrees with an independent reference on random globs and every short text", () => {
  const next = rng(11);
  const tokens = ["a", "b", "/", "*", "?", "**", "/**/", "**/", "/**"];
  const texts = allTexts(["a", "b", "/", "c"], 5);
  for (let i = 0; i < 300; i++) {
    const n = 1 + Math.floor(next() * 5);
    const pattern = Array.from({ length: n }, () => tokens[Math.floor(next() * tokens.length)])
      .join("");
    const m = compileGlob(pattern);
    for (const t of texts) equal(m(t), reference(pattern, t), `${pattern} vs ${JSON.stringify(t)}`);
  }
});

Deno.test("globCovers agrees with brute force over every short text on random small globs", () => {
  const next = rng(7);
  const tokens = ["a", "b", "/", "*", "?", "**", "/**/", "**/", "/**"];
  const texts = allTexts(["a", "b", "/", "c"], 6);
  const randomGlob = (): string => {
    const n = 1 + Math.floor(next() * 4);
    return Array.from({ length: n }, () => tokens[Math.floor(next() * tokens.length)]).join("");
  };
  for (let i = 0; i < 3000; i++) {
    const parent = randomGlob();
    const child = randomGlob();
    const p = compileGlob(parent);
    const c = compileGlob(child);
    const counterexample = texts.find((t) => c(t) && !p(t));
    equal(globCovers(parent, child), counterexample === undefined, `${parent} ⊇ ${child}`);
  }
});

Deno.test("globCovers of a wildcard-free child is exactly matching", () => {
  const patterns = ["/srv/**", "/srv/*", "**/x", "a?c", "/a/**/b", "**", "x/**"];
  const texts = ["/srv", "/srv/a", "/srv/a/b", "x", "a/x", "abc", "a/c", "/a/b", "/a/q/b", "x/"];
  for (const p of patterns) {
    for (const t of texts) equal(globCovers(p, t), matches(p, t), `${p} vs ${t}`);
  }
});

Deno.test("compiled globs stay correct past the cache limit", () => {
  ok(matches("/cached/**", "/cached/a"));
  for (let i = 0; i < 1100; i++) ok(matches(`/n${i}/*`, `/n${i}/x`));
  ok(matches("/cached/**", "/cached/a"));
});
