// Picks the blob store from the config: S3/MinIO when S3 settings are given,
// otherwise the filesystem under the data directory.

import path from 'node:path';
import type { Config } from '../config.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import { createFsBlobStore } from './fs-store.js';

/** Filesystem blobs live here, next to the embedded database and TLS files. */
const FS_BLOB_DIR = 'blobs';
/** Local spool for S3 uploads of streams that are not plain files (see s3-store.ts). */
const S3_SPOOL_DIR = 's3-spool';

export async function createBlobStore(config: Config): Promise<BlobStore> {
  if (config.s3) {
    // Loaded only here: the minio client (~17 MB resident) is not needed on the filesystem store.
    const { createS3BlobStore } = await import('./s3-store.js');
    return createS3BlobStore(config.s3, { spoolDir: path.join(config.dataDir, S3_SPOOL_DIR) });
  }
  // The data directory is held by one process (lib/data-dir-lock.ts): every write in
  // progress under blobs/tmp is a crash's leftover, whatever its age.
  return createFsBlobStore(path.join(config.dataDir, FS_BLOB_DIR), { tempMaxAgeMs: 0 });
}
