// Saves a response body as a file. Used for the device bundle, which must be a POST
// (it issues a certificate and sends the CSRF token); the study ZIP is a plain link
// instead, so the browser streams it to disk without holding it in memory.

export function filenameOf(res: Response, fallback: string): string {
  const cd = res.headers.get('content-disposition') ?? '';
  const star = /filename\*=UTF-8''([^;]+)/i.exec(cd);
  if (star) {
    try {
      return decodeURIComponent(star[1]);
    } catch {
      // fall through to the plain name
    }
  }
  const plain = /filename="?([^";]+)"?/i.exec(cd);
  return plain ? plain[1] : fallback;
}

export async function saveResponse(res: Response, fallback: string): Promise<string> {
  const name = filenameOf(res, fallback);
  const blob = await res.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  // The bundle holds a private key: drop the browser's copy once the download has started.
  window.setTimeout(() => URL.revokeObjectURL(url), 30_000);
  return name;
}
