// Redis's glob (stringmatchlen): `*`, `?`, `[abc]`, `[^a-z]`, `\x`. Used to filter events the
// socket carries for several subscriptions down to the pattern one view asked for.

export function globMatch(pattern: string, text: string): boolean {
  return match(pattern, 0, text, 0, 0);
}

function match(p: string, pi: number, s: string, si: number, depth: number): boolean {
  if (depth > 1000) return false;
  while (pi < p.length) {
    const c = p[pi];
    if (c === "*") {
      while (p[pi + 1] === "*") pi++;
      if (pi + 1 === p.length) return true;
      for (let k = si; k <= s.length; k++) {
        if (match(p, pi + 1, s, k, depth + 1)) return true;
      }
      return false;
    }
    if (si >= s.length) return false;
    if (c === "?") {
      pi++;
      si++;
      continue;
    }
    if (c === "[") {
      let i = pi + 1;
      const negate = p[i] === "^";
      if (negate) i++;
      let hit = false;
      while (i < p.length && p[i] !== "]") {
        if (p[i] === "\\" && i + 1 < p.length) {
          if (p[i + 1] === s[si]) hit = true;
          i += 2;
        } else if (p[i + 1] === "-" && i + 2 < p.length && p[i + 2] !== "]") {
          let lo = p[i] as string;
          let hi = p[i + 2] as string;
          if (lo > hi) [lo, hi] = [hi, lo];
          const ch = s[si] as string;
          if (ch >= lo && ch <= hi) hit = true;
          i += 3;
        } else {
          if (p[i] === s[si]) hit = true;
          i++;
        }
      }
      if (negate) hit = !hit;
      if (!hit) return false;
      pi = i + 1;
      si++;
      continue;
    }
    if (c === "\\" && pi + 1 < p.length) pi++;
    if (p[pi] !== s[si]) return false;
    pi++;
    si++;
  }
  return si === s.length;
}
