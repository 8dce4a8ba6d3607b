/**
 * Runs in every test file (vitest.config.ts, setupFiles): the process groups a test started
 * (testkit/processes.ts) are stopped when it ends, passed, failed or timed out; those a file's
 * beforeAll started, when the file ends. Registered before the file's own hooks, so these run after
 * them: a file's afterAll stops its servers and workers gently first.
 */
import { afterAll, afterEach, beforeEach } from 'vitest';
import { beginTest, endTest, stopAllGroups } from './processes.ts';

beforeEach(() => beginTest());
afterEach(() => endTest(), 60_000);
afterAll(() => stopAllGroups(), 60_000);
