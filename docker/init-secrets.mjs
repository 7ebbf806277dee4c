// The compose file's one-shot `secrets` service (docker/compose.yaml): on the first start it
// generates every credential the stack needs into the `secrets` volume; on later starts it
// keeps what is there (a regenerated database password would lock Tresor out of its data, a
// new master key would make the keys sealed in the database unreadable). Nothing has a
// default value, MinIO's minioadmin included.
//
//   postgres_password   PostgreSQL's password for the role tresor (POSTGRES_PASSWORD_FILE)
//   s3_access_key       MinIO's root user, which Tresor uses as its S3 access key
//   s3_secret_key       MinIO's root password / Tresor's S3 secret key
//   master.key          TRESOR_MASTER_KEY_FILE, written by `tresor keygen` (32 random bytes)
//   tresor.env          DATABASE_URL, S3_ACCESS_KEY, S3_SECRET_KEY for Tresor's entrypoint, from the above
//
// Runs as root (the volume is new and root-owned); everything is mode 0600, owned by root
// (read by the PostgreSQL and MinIO entrypoints, which start as root) except master.key and
// tresor.env, owned by Tresor's uid (1000). Usage: node init-secrets.mjs DIR [UID]
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = process.argv[2];
const tresorUid = Number(process.argv[3] ?? 1000);
if (!dir) {
  process.stderr.write('usage: node init-secrets.mjs DIR [TRESOR_UID]\n');
  process.exit(2);
}
mkdirSync(dir, { recursive: true, mode: 0o700 });
chmodSync(dir, 0o711); // others may pass through to the files they own, not list them

const created = [];
/** Hex only: the values go into a URL and a shell file without quoting concerns. */
function secret(name, make) {
  const file = join(dir, name);
  if (!existsSync(file)) {
    writeFileSync(file, make(), { mode: 0o600, flag: 'wx' });
    created.push(name);
  }
  return readFileSync(file, 'utf8').trim();
}
const pgPassword = secret('postgres_password', () => randomBytes(32).toString('hex'));
const s3Access = secret('s3_access_key', () => `tresor-${randomBytes(8).toString('hex')}`);
const s3Secret = secret('s3_secret_key', () => randomBytes(32).toString('hex'));
const masterKey = join(dir, 'master.key');
if (!existsSync(masterKey)) {
  const cli = fileURLToPath(new URL('./dist/src/cli.js', import.meta.url));
  execFileSync(process.execPath, [cli, 'keygen', '--out', masterKey], { stdio: ['ignore', 'ignore', 'inherit'] });
  created.push('master.key');
}
for (const [name, value] of [['postgres_password', pgPassword], ['s3_access_key', s3Access], ['s3_secret_key', s3Secret]]) {
  if (!/^[0-9a-z-]{16,}$/.test(value)) {
    process.stderr.write(`init-secrets: ${join(dir, name)} is not a generated value (16+ of [0-9a-z-]): delete it to have a new one generated, or fix it\n`);
    process.exit(1);
  }
}
const env = join(dir, 'tresor.env');
writeFileSync(
  env,
  `export DATABASE_URL='postgres://tresor:${pgPassword}@postgres:5432/tresor'\n` +
    `export S3_ACCESS_KEY='${s3Access}'\nexport S3_SECRET_KEY='${s3Secret}'\n`,
  { mode: 0o600 },
);
chmodSync(env, 0o600);
if (process.getuid?.() === 0) {
  chownSync(masterKey, tresorUid, tresorUid);
  chownSync(env, tresorUid, tresorUid);
}
process.stdout.write(created.length ? `init-secrets: generated ${created.join(', ')} in ${dir}\n` : `init-secrets: ${dir} already holds every secret; nothing changed\n`);
