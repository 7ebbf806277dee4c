// dcmjs logs through loglevel with tag values (patient data) in its messages; every
// copy of dcmjs in the process is silenced through this one function (ARCHITECTURE.md
// rule 8). Since issue 13 there is one (dcmjs.ts: the CommonJS build that dcmjs-dimse,
// dcmjs-codecs and dcmjs-imaging share with our code); the calls on the copies those
// libraries resolve stay, in case an update of theirs brings a nested copy back.

/** Sets a dcmjs module's loggers (root, every named one, and validation) to silent. */
export function silenceDcmjs(d: any): void {
  d?.log?.setLevel?.('silent');
  for (const l of Object.values((d?.log?.getLoggers?.() ?? {}) as Record<string, any>)) l?.setLevel?.('silent');
  d?.log?.getLogger?.('validation.dcmjs')?.setLevel?.('silent');
}
