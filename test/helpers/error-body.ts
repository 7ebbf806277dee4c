// The one error body of the HTTP API (http/errors.ts): {"error":{"code","message"}}
// (plus "retryAfterSeconds" when a Retry-After header says when to try again),
// as JSON, with nothing internal in it.

import { expect } from 'vitest';

export interface ErrorResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The parsed JSON body. */
  body: any;
}

export function expectErrorBody(r: ErrorResponse, status: number, code?: string): void {
  expect(r.status, r.text).toBe(status);
  expect(r.headers['content-type']).toMatch(/^application\/json/);
  expect(Object.keys(r.body)).toEqual(['error']);
  // retryAfterSeconds only beside a Retry-After header (a locked account), with its value.
  if (r.headers['retry-after'] !== undefined && r.body.error.retryAfterSeconds !== undefined) {
    expect(Object.keys(r.body.error).sort()).toEqual(['code', 'message', 'retryAfterSeconds']);
    expect(String(r.body.error.retryAfterSeconds)).toBe(String(r.headers['retry-after']));
  } else {
    expect(Object.keys(r.body.error).sort()).toEqual(['code', 'message']);
  }
  if (code) expect(r.body.error.code).toBe(code);
  // Nothing internal: no stack, no SQL, no file paths.
  expect(r.text).not.toMatch(/\bat .+:\d+:\d+|select |insert |node_modules|\/work\/|Error:/i);
}
