import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

/** A page: its heading takes the focus when it opens, so keyboard and screen-reader users start at the top. */
export function Page({ title, intro, children, actions }: { title: string; intro?: ComponentChildren; children: ComponentChildren; actions?: ComponentChildren }) {
  const h1 = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${title} · Tresor`;
    h1.current?.focus();
  }, [title]);
  return (
    <section class="page" aria-labelledby="page-title">
      <div class="page-head">
        <h1 id="page-title" tabIndex={-1} ref={h1}>
          {title}
        </h1>
        {actions ? <div class="page-actions">{actions}</div> : null}
      </div>
      {intro ? <p class="intro">{intro}</p> : null}
      {children}
    </section>
  );
}

/** A scrollable region for wide tables (tablets): reachable and scrollable with the keyboard. */
export function TableWrap({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <div class="table-wrap" role="region" aria-label={label} tabIndex={0}>
      {children}
    </div>
  );
}
