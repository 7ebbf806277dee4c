// A minimal XMLHttpRequest over node:https for dicomweb-client (the library OHIF uses
// is written for browsers). It implements what dicomweb-client touches: open,
// setRequestHeader, send, responseType ('arraybuffer' | 'json' | ''), status,
// response, getResponseHeader, getAllResponseHeaders, onreadystatechange and the
// load/progress callbacks. TLS trusts only the test CA.

import https from 'node:https';

export function xhrClass(ca: string) {
  return class NodeXhr {
    readyState = 0;
    status = 0;
    response: unknown = null;
    responseType = '';
    withCredentials = false;
    onreadystatechange: (() => void) | null = null;
    onloadstart: (() => void) | null = null;
    onloadend: (() => void) | null = null;
    onprogress: ((e: unknown) => void) | null = null;
    private method = 'GET';
    private url = '';
    private headers: Record<string, string> = {};
    private resHeaders: Record<string, string | string[] | undefined> = {};

    open(method: string, url: string): void {
      this.method = method.toUpperCase();
      this.url = url;
      this.readyState = 1;
    }

    setRequestHeader(name: string, value: string): void {
      this.headers[name] = value;
    }

    getResponseHeader(name: string): string | null {
      const v = this.resHeaders[name.toLowerCase()];
      return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
    }

    getAllResponseHeaders(): string {
      return Object.entries(this.resHeaders)
        .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}`)
        .join('\r\n');
    }

    send(data?: ArrayBuffer | Uint8Array | string | null): void {
      this.onloadstart?.();
      const body = data === undefined || data === null ? undefined : typeof data === 'string' ? Buffer.from(data) : Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
      const req = https.request(this.url, { method: this.method, headers: { ...this.headers, ...(body ? { 'content-length': String(body.length) } : {}) }, ca, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const buf = Buffer.concat(chunks);
          this.status = res.statusCode ?? 0;
          this.resHeaders = res.headers;
          if (this.responseType === 'arraybuffer') this.response = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
          else if (this.responseType === 'json') {
            try {
              this.response = buf.length ? JSON.parse(buf.toString('utf8')) : null;
            } catch {
              this.response = null;
            }
          } else this.response = buf.toString('utf8');
          this.readyState = 4;
          this.onreadystatechange?.();
          this.onloadend?.();
        });
      });
      req.on('error', () => {
        this.status = 0;
        this.readyState = 4;
        this.onreadystatechange?.();
      });
      req.end(body);
    }
  };
}
