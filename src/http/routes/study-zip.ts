// GET /console/api/studies/{studyUid}/zip: the study's stored DICOM files, byte for byte,
// as one streamed ZIP (APPNOTE 6.3.x; "stored", no compression: the objects keep their
// bytes and the archive's size is known before the first byte, so Content-Length is
// sent). Authorized and audited by the same core retrieve run as WADO-RS (rule 3: a
// study the caller may not read is not found).
//
// Bounded memory: yazl pumps one entry at a time and pipes it into its output stream
// (stream.pipe, so a slow client pauses the blob read); the next object is opened only
// when the previous one is done (addReadStreamLazy). What stays in memory per entry is
// its central-directory record (name, sizes, CRC), a few hundred bytes.

import type { Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import yazl from 'yazl';
import type { RetrieveService, StoredInstance } from '../../core/retrieve.js';
import { principalOf } from '../auth.js';
import { openerOf } from '../open-stored.js';

export interface StudyZipOptions {
  retrieve: RetrieveService;
}

const UID_PATTERN = '^[0-9]+(\\.[0-9]+)*$';

/** Entry name: UIDs only (never patient data), one folder per series. */
const entryName = (i: StoredInstance) => `${i.studyUid}/${i.seriesUid}/${i.sopInstanceUid}.dcm`;

export async function studyZipRoutes(app: FastifyInstance, opts: StudyZipOptions): Promise<void> {
  app.get<{ Params: { studyUid: string } }>(
    '/console/api/studies/:studyUid/zip',
    { schema: { params: { type: 'object', additionalProperties: false, required: ['studyUid'], properties: { studyUid: { type: 'string', maxLength: 64, pattern: UID_PATTERN } } } } },
    async (request, reply) => {
      const p = principalOf(request);
      const studyUid = request.params.studyUid;
      return opts.retrieve.run(p, { via: 'console', source: request.ip, details: { resource: 'zip' } }, async (r) => {
        const rows = await r.list({ level: 'STUDY', studyUids: [studyUid] });
        r.note({ instances: rows.length });
        const open = openerOf(r, request.log);
        // The first object is opened before answering: a missing blob is then a clean 503.
        let first: Readable | undefined = await open(rows[0]!);
        const zip = new yazl.ZipFile();
        const mtime = new Date();
        for (const row of rows) {
          zip.addReadStreamLazy(entryName(row), { compress: false, size: row.size, mtime }, (cb) => {
            const ready = first;
            first = undefined;
            if (ready) return cb(null, ready);
            open(row).then(
              (s) => cb(null, s),
              (e: unknown) => cb(e as Error, undefined as unknown as Readable),
            );
          });
        }
        let total = -1;
        // (@types/yazl omits the size argument of this callback: yazl passes it, -1 when unknown.)
        (zip as unknown as { end(o: object, cb: (size: number) => void): void }).end({}, (size) => {
          total = size;
        });
        const out = zip.outputStream as Readable;
        // A failure half-way (a blob gone, a wrong size) cuts the response: a ZIP without
        // its central directory is visibly broken, never a silently wrong archive.
        zip.on('error', (err: Error) => {
          request.log.error({ err: String(err), studyUid }, 'study ZIP cut short');
          out.destroy(err);
        });
        if (total >= 0) reply.header('content-length', String(total));
        return reply
          .code(200)
          .header('content-type', 'application/zip')
          .header('content-disposition', `attachment; filename="study-${studyUid}.zip"`)
          .header('cache-control', 'private, no-store')
          .send(out);
      });
    },
  );
}
