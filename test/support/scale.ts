/**
 * Test sizing. `npm test` (the CI suite) runs the small sizes; `npm run test:full`
 * sets DIVAN_TEST_FULL=1 and runs the large ones.
 */
export const fullRun = process.env.DIVAN_TEST_FULL === '1';

/** Returns `quick` in the CI suite and `full` under `npm run test:full`. */
export function scaled(quick: number, full: number): number {
  return fullRun ? full : quick;
}
