// The image's HEALTHCHECK: GET https://127.0.0.1:$TRESOR_HTTP_PORT/healthz, healthy on 200.
// No curl in the image; node is there.
//
// The server certificate is NOT verified here (rejectUnauthorized: false), on purpose and
// only here: the probe runs inside the container against its own loopback address, sends
// no credential and reads nothing but a status code, so there is nothing to protect from a
// man in the middle who would have to be inside the container already. Verifying would tie
// the probe to where the CA lives (generated in /data/tls, your own PKI via TRESOR_TLS_CA,
// or sealed in the database with TRESOR_MASTER_KEY_FILE) and to the certificate's host names.

import https from 'node:https';

const port = Number(process.env.TRESOR_HTTP_PORT || 8443);
const req = https.get({ host: '127.0.0.1', port, path: '/healthz', rejectUnauthorized: false, timeout: 8000 }, (res) => {
  res.resume();
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', (e) => {
  process.stderr.write(`healthcheck: ${e.message}\n`);
  process.exit(1);
});
