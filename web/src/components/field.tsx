import type { ComponentChildren } from 'preact';
import { useId } from 'preact/hooks';

interface FieldProps {
  label: string;
  value: string;
  onValue(v: string): void;
  type?: 'text' | 'password' | 'date' | 'datetime-local' | 'number' | 'search';
  hint?: ComponentChildren;
  error?: string | null;
  required?: boolean;
  autoComplete?: string;
  placeholder?: string;
  maxLength?: number;
  pattern?: string;
  inputMode?: 'text' | 'numeric' | 'decimal' | 'email' | 'search';
  name?: string;
  autoFocus?: boolean;
  min?: string;
  max?: string;
  spellcheck?: boolean;
}

/** A labelled input with its hint and error tied to it for screen readers. */
export function Field(p: FieldProps) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errId = `${id}-err`;
  const describedBy = [p.hint ? hintId : '', p.error ? errId : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div class={`field${p.error ? ' field-invalid' : ''}`}>
      <label for={id}>
        {p.label}
        {p.required ? null : <span class="optional"> (optional)</span>}
      </label>
      <input
        id={id}
        name={p.name}
        type={(p.type ?? 'text') as 'text'}
        value={p.value}
        onInput={(e) => p.onValue((e.currentTarget as HTMLInputElement).value)}
        required={p.required}
        autoComplete={p.autoComplete ?? 'off'}
        placeholder={p.placeholder}
        maxLength={p.maxLength}
        inputMode={p.inputMode}
        autoFocus={p.autoFocus}
        min={p.min}
        max={p.max}
        spellcheck={p.spellcheck ?? false}
        aria-invalid={p.error ? 'true' : undefined}
        aria-describedby={describedBy}
      />
      {p.hint ? (
        <p class="hint" id={hintId}>
          {p.hint}
        </p>
      ) : null}
      {p.error ? (
        <p class="field-error" id={errId}>
          {p.error}
        </p>
      ) : null}
    </div>
  );
}

interface SelectProps {
  label: string;
  value: string;
  onValue(v: string): void;
  options: { value: string; label: string }[];
  hint?: ComponentChildren;
  required?: boolean;
  name?: string;
}

export function SelectField(p: SelectProps) {
  const id = useId();
  return (
    <div class="field">
      <label for={id}>
        {p.label}
        {p.required === false ? <span class="optional"> (optional)</span> : null}
      </label>
      <select id={id} name={p.name} value={p.value} onChange={(e) => p.onValue((e.currentTarget as HTMLSelectElement).value)} aria-describedby={p.hint ? `${id}-hint` : undefined}>
        {p.options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
      {p.hint ? (
        <p class="hint" id={`${id}-hint`}>
          {p.hint}
        </p>
      ) : null}
    </div>
  );
}
