// A Config for tests: the production defaults of loadConfig (no environment read),
// with the data directory and whatever a test changes.

import { loadConfig, type Config } from '../../src/config.js';

export type TestConfigChanges = Partial<Omit<Config, 'limits'>> & { limits?: Partial<Config['limits']> };

export function testConfig(dataDir: string, changes: TestConfigChanges = {}): Config {
  const base = loadConfig({ dataDir }, {});
  return { ...base, ...changes, limits: { ...base.limits, ...changes.limits } };
}
