// The one error body of the HTTP API (http/errors.ts): {"error":{"code","message"}},
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
  expect(Object.keys(r.body.error).sort()).toEqual(['code', 'message']);
  if (code) expect(r.body.error.code).toBe(code);
  // Nothing internal: no stack, no SQL, no file paths.
  expect(r.text).not.toMatch(/\bat .+:\d+:\d+|select |insert |node_modules|\/work\/|Error:/i);
}
