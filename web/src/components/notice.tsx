import type { ComponentChildren } from 'preact';

export type NoticeKind = 'error' | 'success' | 'info' | 'warning';

/** A message box. Errors are announced at once (role=alert); the others politely. */
export function Notice({ kind, children }: { kind: NoticeKind; children: ComponentChildren }) {
  if (children === null || children === undefined || children === '' || children === false) return null;
  return (
    <div class={`notice notice-${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      {children}
    </div>
  );
}
