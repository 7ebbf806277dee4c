// A Tresor DICOMweb server in its own process, so a test can measure the server's RSS
// and nothing else (the client, the test runner and the generated data live in the
// parent). Run with `node --import tsx test/helpers/dicomweb-child.ts`; it talks over
// the IPC channel:
//   → {type:'ready', url, ca, token}     once listening
//   ← {type:'reset'}                     start a new peak measurement
//   ← {type:'peak'} → {type:'peak', baseline, peak, now}   RSS in bytes since the reset
//   ← {type:'close'}                     shut down and exit

import { databasesUnderTest } from './db.js';
import { startDicomwebServer } from './dicomweb.js';
import { testPki } from './http.js';

const GiB = 1024 ** 3;

async function main(): Promise<void> {
  const t = await databasesUnderTest()[0].open();
  const pki = await testPki();
  const s = await startDicomwebServer({ db: t.db, pki, limits: { maxObjectBytes: 2 * GiB, maxRequestBytes: 4 * GiB, maxParts: 10 } });
  await s.department('radiology');
  const token = await s.user('big-admin', [{ department: 'radiology', role: 'admin' }]);

  let baseline = process.memoryUsage().rss;
  let peak = baseline;
  setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 25).unref();

  process.on('message', async (m: { type: string }) => {
    if (m.type === 'reset') {
      global.gc?.();
      baseline = process.memoryUsage().rss;
      peak = baseline;
      process.send!({ type: 'reset' });
    } else if (m.type === 'peak') {
      process.send!({ type: 'peak', baseline, peak, now: process.memoryUsage().rss });
    } else if (m.type === 'close') {
      await s.close();
      await t.close();
      process.exit(0);
    }
  });
  process.send!({ type: 'ready', url: s.url, ca: s.ca, token });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
