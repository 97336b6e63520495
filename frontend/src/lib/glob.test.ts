// @vitest-environment node
import { globMatch } from "./glob";

describe("Redis glob", () => {
  it.each([
    ["*", "anything", true],
    ["user:*", "user:1", true],
    ["user:*", "order:1", false],
    ["h?llo", "hello", true],
    ["h?llo", "hllo", false],
    ["h[ae]llo", "hallo", true],
    ["h[^e]llo", "hello", false],
    ["h[a-b]llo", "hbllo", true],
    ["h\\*llo", "h*llo", true],
    ["h\\*llo", "hello", false],
    ["*:*:*", "a:b:c", true],
  ])("%s against %s is %s", (pattern, text, expected) => {
    expect(globMatch(pattern, text)).toBe(expected);
  });

  it("answers hostile patterns", () => {
    expect(globMatch("*a*a*a*a*a*a*a*b", "a".repeat(30))).toBe(false);
    expect(globMatch("[", "[")).toBe(false);
    expect(globMatch("a\\", "a")).toBe(false);
  });
});
