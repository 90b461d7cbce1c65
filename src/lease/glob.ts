/**
 * Glob matching for lease patterns (ARCP.md §5.2), and glob inclusion for
 * delegation subsetting (§5.7).
 *
 * The grammar is the same for every namespace:
 *
 * - The segment separator is `/`, for paths, URLs and tool / agent / model
 *   names alike (so `openai/*` covers `openai/gpt-4o` but not
 *   `openai/ft/gpt-4o`).
 * - A glob is anchored: it matches the whole text, never a substring.
 * - `?` matches one character other than `/`.
 * - `*` matches zero or more characters other than `/` (it never crosses a
 *   segment). A run of stars that is not a whole segment (`a**b`) means `*`.
 * - `**` as a whole segment matches zero or more whole segments. A trailing
 *   one: `a/**` matches `a`, `a/`, `a/b` and `a/b/c` (so `/srv/data/**` also
 *   grants the directory `/srv/data` itself). A leading one: `**` followed by
 *   `/b` matches `b` and `x/y/b`. An inner one: `a/**` followed by `/b`
 *   matches `a/b` and `a/x/y/b`. `**` alone matches everything. Segments may
 *   be empty, so `https://host/**` matches `https://host/`.
 * - Every other character is literal, including `[`, `{`, `\` and `.`; there
 *   are no character classes, alternations or escapes.
 * - Matching is case-sensitive and works on Unicode code points. Canonicalize
 *   paths and URLs before matching (see `canonical.ts`).
 *
 * @module
 */

/** One step of a parsed glob. */
type Piece =
  | { kind: "lit"; ch: string }
  | { kind: "one" }
  | { kind: "star" }
  | { kind: "all" }
  | { kind: "opt"; body: Piece[] };

/** What an automaton edge consumes: one literal, any non-`/`, or anything. */
type Edge =
  | { on: "lit"; ch: string; to: number }
  | { on: "nonsep"; to: number }
  | { on: "any"; to: number };

/**
 * A Thompson automaton over code points: state 0 starts, `accept` accepts,
 * `closures[s]` is every state reachable from `s` by epsilon edges (sorted,
 * `s` included).
 */
interface Nfa {
  edges: Edge[][];
  closures: number[][];
  accept: number;
}

/** Budget for {@linkcode globCovers}: automaton steps it may still spend. */
export interface CoversBudget {
  /** Steps left; every call lowers it, and at zero every call answers false. */
  steps: number;
}

const SEP = "/";
const CACHE_LIMIT = 1024;
/**
 * Default steps for one {@linkcode globCovers} call. Ordinary lease
 * patterns need a few hundred; a pathological pair (the subset construction
 * blows up) gets the safe answer instead of burning CPU.
 */
const COVERS_STEPS = 50_000;

const cache = new Map<string, Nfa>();

function segmentPieces(segment: string): Piece[] {
  const out: Piece[] = [];
  for (const ch of segment) {
    if (ch === "*") {
      if (out.at(-1)?.kind !== "star") out.push({ kind: "star" });
    } else if (ch === "?") out.push({ kind: "one" });
    else out.push({ kind: "lit", ch });
  }
  return out;
}

function parse(pattern: string): Piece[] {
  const segments = pattern.split(SEP).filter((seg, i, all) =>
    // `a/**/**/b` means `a/**/b`; keeping both would give `a/**/**` a
    // different meaning from `a/**`.
    !(i > 0 && seg === "**" && all[i - 1] === "**")
  );
  const last = segments.length - 1;
  if (last === 0 && segments[0] === "**") return [{ kind: "all" }];
  const sep: Piece = { kind: "lit", ch: SEP };
  const out: Piece[] = [];
  segments.forEach((seg, i) => {
    const globstar = seg === "**";
    // A leading or inner `**` carries its own trailing separator, a trailing
    // `**` its own leading one, so both vanish when they match no segment.
    const afterInnerGlobstar = i > 0 && segments[i - 1] === "**";
    if (i > 0 && !(globstar && i === last) && !afterInnerGlobstar) out.push(sep);
    if (!globstar) out.push(...segmentPieces(seg));
    else if (i === last) out.push({ kind: "opt", body: [sep, { kind: "all" }] });
    else out.push({ kind: "opt", body: [{ kind: "all" }, sep] });
  });
  return out;
}

function buildNfa(pieces: Piece[]): Nfa {
  const edges: Edge[][] = [[]];
  const eps: number[][] = [[]];
  const fresh = (): number => {
    edges.push([]);
    eps.push([]);
    return edges.length - 1;
  };
  const emit = (list: Piece[], from: number): number => {
    let at = from;
    for (const p of list) {
      if (p.kind === "lit" || p.kind === "one") {
        const to = fresh();
        edges[at].push(p.kind === "lit" ? { on: "lit", ch: p.ch, to } : { on: "nonsep", to });
        at = to;
      } else if (p.kind === "star" || p.kind === "all") {
        // Loops live on states of their own, entered and left by epsilon
        // edges only: a loop on an entry or exit state would also run on
        // the path that skips an optional group sharing that state.
        const loop = fresh();
        const out = fresh();
        eps[at].push(loop);
        edges[loop].push(p.kind === "star" ? { on: "nonsep", to: loop } : { on: "any", to: loop });
        eps[loop].push(out);
        at = out;
      } else {
        const end = fresh();
        eps[emit(p.body, at)].push(end);
        eps[at].push(end);
        at = end;
      }
    }
    return at;
  };
  const accept = emit(pieces, 0);
  const closures = eps.map((_, s) => {
    const seen = new Set<number>();
    const stack = [s];
    while (stack.length > 0) {
      const t = stack.pop()!;
      if (seen.has(t)) continue;
      seen.add(t);
      stack.push(...eps[t]);
    }
    return [...seen].sort((a, b) => a - b);
  });
  return { edges, closures, accept };
}

function nfaFor(pattern: string): Nfa {
  const hit = cache.get(pattern);
  if (hit) return hit;
  const nfa = buildNfa(parse(pattern));
  if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  cache.set(pattern, nfa);
  return nfa;
}

function edgeTakes(edge: Edge, symbol: string): boolean {
  if (edge.on === "any") return true;
  if (edge.on === "nonsep") return symbol !== SEP;
  return edge.ch === symbol;
}

/** The epsilon closure of a set of states, sorted. */
function closureOf(nfa: Nfa, states: Iterable<number>): number[] {
  const out = new Set<number>();
  for (const s of states) for (const t of nfa.closures[s]) out.add(t);
  return [...out].sort((a, b) => a - b);
}

/**
 * Runs the automaton over the text, tracking every live state at once: time
 * is text length × pattern length whatever the pattern, where a
 * backtracking regex can take exponential time on patterns like `*a*a*a*b`.
 */
function run(nfa: Nfa, text: string): boolean {
  let live = nfa.closures[0];
  for (const ch of text) {
    const next: number[] = [];
    for (const s of live) {
      for (const e of nfa.edges[s]) if (edgeTakes(e, ch)) next.push(e.to);
    }
    if (next.length === 0) return false;
    live = closureOf(nfa, next);
  }
  return live.includes(nfa.accept);
}

/**
 * Compiles a lease glob into a matcher. Compiled globs are cached, so
 * calling this per check is cheap. Matching takes time proportional to text
 * length × pattern length, never more.
 *
 * @param pattern the glob, e.g. `/srv/data/**` or `https://api.example.com/v1/*`
 * @returns a function telling whether a whole text matches
 * @example
 * ```ts
 * import { compileGlob } from "./glob.ts";
 * const m = compileGlob("/srv/*.csv");
 * m("/srv/a.csv"); // true
 * m("/srv/sub/a.csv"); // false: `*` stays in one segment
 * ```
 */
export function compileGlob(pattern: string): (text: string) => boolean {
  const nfa = nfaFor(pattern);
  return (text: string): boolean => run(nfa, text);
}

/**
 * Whether any of the globs matches the whole text.
 *
 * @param patterns the globs of one lease namespace
 * @param text a canonical path, URL or name
 * @returns true when at least one glob matches
 * @example
 * ```ts
 * import { matchesAny } from "./glob.ts";
 * matchesAny(["search", "files/*"], "files/read"); // true
 * ```
 */
export function matchesAny(patterns: readonly string[], text: string): boolean {
  return patterns.some((p) => run(nfaFor(p), text));
}

/** The characters a glob treats as wildcards. */
const WILDCARDS = /[*?]/;

/** The literal text every match of a glob starts with. */
function literalPrefix(pattern: string): string {
  const i = pattern.search(WILDCARDS);
  return i < 0 ? pattern : pattern.slice(0, i);
}

/**
 * Stands for every code point that is neither `/` nor a literal of either
 * glob; being longer than one code point, it equals no literal.
 */
const OTHER = "<other>";

/**
 * Whether every text matched by glob `child` is also matched by glob
 * `parent`: the check behind "every child pattern covered by a parent
 * pattern" (ARCP.md §5.7).
 *
 * Exact: the product of the child's automaton with the (lazily)
 * determinized parent is searched for a text the child accepts and the
 * parent rejects. Characters that neither glob names literally behave
 * alike, so one stand-in represents them all. A pair that would take more
 * than the budget to decide yields `false`, the safe answer.
 *
 * @param parent the glob that must cover
 * @param child the glob that must be covered
 * @param budget steps this call may spend; pass one shared object to bound
 *   the total work of many calls (default: a fresh allowance per call)
 * @returns true only when `child`'s matches are a subset of `parent`'s
 * @example
 * ```ts
 * import { globCovers } from "./glob.ts";
 * globCovers("/srv/**", "/srv/data/*.csv"); // true
 * globCovers("/srv/*", "/srv/**"); // false: `/srv/a/b` escapes
 * ```
 */
export function globCovers(
  parent: string,
  child: string,
  budget: CoversBudget = { steps: COVERS_STEPS },
): boolean {
  if (parent === child || parent === "**") return true;
  const pp = literalPrefix(parent);
  const cp = literalPrefix(child);
  const shared = Math.min(pp.length, cp.length);
  // Every match of each starts with its prefix, so diverging prefixes mean
  // the child matches something the parent cannot.
  if (pp.slice(0, shared) !== cp.slice(0, shared)) return false;
  if (!WILDCARDS.test(child)) return run(nfaFor(parent), child);

  const pNfa = nfaFor(parent);
  const cNfa = nfaFor(child);
  const symbols = new Set<string>([SEP, OTHER]);
  for (const ch of parent + child) symbols.add(ch);

  const dfa = new Map<string, { states: number[]; accepts: boolean; next: Map<string, string> }>();
  const intern = (states: number[]): string => {
    const key = states.join(",");
    if (!dfa.has(key)) {
      dfa.set(key, { states, accepts: states.includes(pNfa.accept), next: new Map() });
    }
    return key;
  };
  const step = (key: string, symbol: string): string => {
    const node = dfa.get(key)!;
    const known = node.next.get(symbol);
    if (known !== undefined) return known;
    const targets: number[] = [];
    for (const s of node.states) {
      budget.steps -= pNfa.edges[s].length;
      for (const e of pNfa.edges[s]) if (edgeTakes(e, symbol)) targets.push(e.to);
    }
    const next = intern(closureOf(pNfa, targets));
    node.next.set(symbol, next);
    return next;
  };

  const start = intern(pNfa.closures[0]);
  const seen = new Set<string>();
  const queue: Array<[number, string]> = cNfa.closures[0].map((c) => [c, start]);
  while (queue.length > 0) {
    if (budget.steps <= 0) return false;
    const [c, p] = queue.pop()!;
    const id = `${c}|${p}`;
    if (seen.has(id)) continue;
    seen.add(id);
    budget.steps--;
    if (c === cNfa.accept && !dfa.get(p)!.accepts) return false;
    for (const e of cNfa.edges[c]) {
      for (const symbol of e.on === "lit" ? [e.ch] : symbols) {
        if (!edgeTakes(e, symbol)) continue;
        const next = step(p, symbol);
        for (const c2 of cNfa.closures[e.to]) queue.push([c2, next]);
      }
    }
  }
  return true;
}
