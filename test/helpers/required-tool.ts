// Tools some tests need from the system (Chromium, promtool). Missing on a developer's machine, a test
// skips and says what to install; in CI (`CI` set, as .ci/run does) a missing tool fails the test,
// because CI installs them and a skip there would hide that the check never ran.

/** The skip reason for a missing tool, or false when the test must run (and fail, if the tool is absent). */
export function skipUnlessInstalled(installed: boolean, what: string): string | false {
  if (installed) return false;
  if (process.env.CI) return false;
  return `${what} is not installed`;
}

/** For a tool found missing only when it is run: throws in CI, else returns the skip reason. */
export function missingTool(what: string): string {
  if (process.env.CI) throw new Error(`${what} is not installed, and CI must run this test`);
  return `${what} is not installed`;
}
