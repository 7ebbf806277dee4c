// tresor device bundle AE --out DIR [--edge --listen HOST:PORT --allow ADDR[,ADDR…]]
//
// Asks Tresor to issue the device a certificate with a key it generates (POST
// /admin/devices/{ae}/certificate without a CSR: issued and audited by the server) and
// writes what the device's administrator needs, built by edge/bundle.ts (the same files
// as the console's ZIP, POST /admin/devices/{ae}/bundle):
//   plain: <AE>.key (0600), <AE>.crt, tresor-ca.crt, storescu.sh, orthanc.json, README.txt;
//   --edge: edge.json for `tresor edge`, key 0600, certificate, CA.
// Issuing a new certificate revokes the device's previous one (server side).

import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { writeFileAtomic } from '../lib/fs-atomic.js';
import { EdgeConfigError } from '../edge/config.js';
import { deviceBundleFiles, parseAllow, parseEndpoint, writeEdgeBundle } from '../edge/bundle.js';
import { connect, seg, withServerOptions, type ServerOptions } from './api-client.js';
import { emit, usageError } from './output.js';
import { parsePort } from './args.js';

interface BundleOptions extends ServerOptions {
  out: string;
  days?: number;
  keyType?: 'ec' | 'rsa';
  dimseHost?: string;
  dimsePort: number;
  calledAe: string;
  serverName?: string;
  edge: boolean;
  listen?: string;
  allow?: string;
  edgeName: string;
}


export { storescuScript } from '../edge/bundle.js';

export function bundleCommand(device: Command): void {
  withServerOptions(
    device
      .command('bundle')
      .description("issue the device a certificate and write its key (0600), certificate, Tresor's CA and ready-to-use settings")
      .argument('<aeTitle>', "the device's AE title (registered with `tresor device add`)")
      .requiredOption('--out <dir>', 'directory to write into (created with mode 0700)')
      .option('--days <n>', 'certificate lifetime in days (default: the server default)', (s) => {
        const n = Number(s);
        if (!/^\d+$/.test(s) || n < 1 || n > 3650) throw usageError(`--days ${s}: expected 1–3650`);
        return n;
      })
      .option('--key-type <type>', 'the key pair to generate: ec (ECDSA P-256, the default) or rsa (RSA 3072, for a device that cannot use an EC key)', (s) => {
        if (s !== 'ec' && s !== 'rsa') throw usageError(`--key-type ${s}: expected ec or rsa`);
        return s;
      })
      .option('--dimse-host <host>', "Tresor's DICOM host as the device reaches it (default: the host of --url)")
      .option('--dimse-port <port>', "Tresor's DICOM TLS port", parsePort, 2762)
      .option('--called-ae <ae>', "Tresor's AE title", 'TRESOR')
      .option('--server-name <name>', "the name Tresor's certificate must carry, for the edge (default: --dimse-host)")
      .option('--edge', 'write an edge bundle (edge.json for `tresor edge`) instead', false)
      .option('--listen <host:port>', 'with --edge: where the edge listens for the device')
      .option('--allow <addr,...>', "with --edge: the device's addresses allowed to connect (required unless --listen is loopback)")
      .option('--edge-name <name>', 'with --edge: the edge name announced to Tresor (1–11 of A-Z 0-9 _ -)', 'EDGE'),
  ).action(async (aeTitle: string, opts: BundleOptions) => {
    if (!opts.edge && (opts.listen || opts.allow)) throw usageError('--listen and --allow need --edge');
    if (opts.edge && !opts.listen) throw usageError('--edge needs --listen HOST:PORT (where the edge listens for the device)');
    const listen = opts.edge ? parseEndpoint(opts.listen!) : undefined;
    const allow = opts.allow ? parseAllow(opts.allow) : [];
    const dimseHost = opts.dimseHost ?? new URL(opts.url).hostname.replace(/^\[|\]$/g, '');

    const api = await connect(opts);
    const issued = await api.request('POST', `/admin/devices/${seg(aeTitle)}/certificate`, { ...(opts.days ? { days: opts.days } : {}), ...(opts.keyType ? { keyType: opts.keyType } : {}) });
    const out = path.resolve(opts.out);

    if (opts.edge) {
      let configFile: string;
      try {
        configFile = await writeEdgeBundle(out, {
          edgeName: opts.edgeName,
          aeTitle,
          certificatePem: issued.certificate,
          privateKeyPem: issued.privateKey,
          caPem: issued.ca,
          tresor: { host: dimseHost, port: opts.dimsePort, aeTitle: opts.calledAe, ...(opts.serverName ? { serverName: opts.serverName } : {}) },
          listen: listen!,
          allow,
        });
      } catch (e) {
        if (e instanceof EdgeConfigError) throw usageError(`edge bundle not written: ${e.message.replace(/\s*\n\s*/g, '; ')}`);
        throw e;
      }
      emit(opts.json, { aeTitle, edgeConfig: configFile, fingerprint256: issued.fingerprint256, notAfter: issued.notAfter }, () => [
        `wrote ${configFile} for ${aeTitle} (certificate until ${issued.notAfter})`,
        `next: copy ${out} to the edge host and run: tresor edge --config ${path.join(out, 'edge.json')}`,
      ]);
      return;
    }

    await mkdir(out, { recursive: true, mode: 0o700 });
    const bundle = deviceBundleFiles({
      aeTitle,
      certificatePem: issued.certificate,
      privateKeyPem: issued.privateKey,
      caPem: issued.ca,
      tresor: { host: dimseHost, port: opts.dimsePort, aeTitle: opts.calledAe },
      dir: out,
      notAfter: issued.notAfter,
    });
    for (const f of bundle) {
      await writeFileAtomic(path.join(out, f.name), f.content, f.mode);
      // (the umask may have narrowed the mode at creation)
      if (f.mode === 0o755) await chmod(path.join(out, f.name), f.mode);
    }
    const [key, cert, ca] = bundle;
    const files = { key: key!.name, cert: cert!.name, ca: ca!.name };
    const script = path.join(out, 'storescu.sh');
    emit(opts.json, { aeTitle, dir: out, files: { ...files, storescu: 'storescu.sh', orthanc: 'orthanc.json' }, fingerprint256: issued.fingerprint256, notAfter: issued.notAfter }, () => [
      `wrote the bundle of ${aeTitle} to ${out} (certificate until ${issued.notAfter}; any previous certificate is revoked)`,
      `send files: ${script} FILE...`,
    ]);
  });
}
