// The console in a real browser (issue 9): Debian's Chromium through playwright-core
// against `tresor serve` from the build, as a clinic administrator uses it. One story,
// step by step, each step saving a screenshot under test-artifacts/browser/:
// the bootstrap admin logs in and must choose a password; creates departments, users
// and a device through the pages; enrols a modality and downloads its bundle; the
// bundle's files, unchanged, send a CT with storescu over TLS; the department's user
// finds the study, downloads its ZIP and logs out (the old cookie is then refused); a
// user of another department sees none of it; a reader sees no administration and is
// refused by the admin API; a locked account is told when to retry; an ended session
// sends the page back to the login with a message. Throughout: the CSP header, and no
// session secret in localStorage, sessionStorage or a URL.

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distinctColours, pixelsOf } from '../helpers/canvas.js';
import { ARTIFACTS, launchChromium, requireChromium, ROOT, spkiHash, startServe, type ServeProcess } from '../helpers/browser.js';
import { freePort, run } from '../helpers/dimse-tools.js';
import { SAMPLE_DIR } from '../helpers/samples.js';

const COOKIE = '__Host-tresor_session';
const ADMIN_NEW_PASSWORD = 'Clinic-keeper-2026!';
const PASSWORD = 'Imaging-staff-2026';
const CT = path.join(SAMPLE_DIR, 'CT_small.dcm');
const MR = path.join(SAMPLE_DIR, 'MR_small.dcm');
// CT_small.dcm: StudyInstanceUID and patient (dcmdump of the pydicom sample).
const CT_STUDY = '1.3.6.1.4.1.5962.1.2.1.20040119072730.12322';
const MR_STUDY = '1.3.6.1.4.1.5962.1.2.4.20040826185059.5457';

interface Session {
  context: BrowserContext;
  page: Page;
  /** Uncaught page errors and CSP violations seen in the console. */
  problems: string[];
}

const WAIT = { timeout: 15_000, interval: 100 };

/** The text of every element the locator matches, polled until the assertion holds (vitest expect.poll). */
const textOf = (l: Locator) => expect.poll(async () => (await l.allInnerTexts()).join('\n'), WAIT);

async function seen(l: Locator): Promise<void> {
  await l.first().waitFor({ state: 'visible', timeout: WAIT.timeout });
}

/** Opens a collapsible "Add …" card (a <details>) unless it is open already. */
async function openCard(page: Page, formName: string): Promise<Locator> {
  // A closed <details> hides its form from role queries: find both by CSS.
  const details = page.locator(`details:has(form[aria-label="${formName}"])`);
  if ((await details.getAttribute('open')) === null) await details.locator('summary').click();
  return page.getByRole('form', { name: formName });
}

/** A link of the main navigation (pages may link to the same place in their text). */
function nav(page: Page, name: string): Locator {
  return page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });
}

/** Builds the server and the console when the build is older than its sources. */
function ensureBuilt(): void {
  const newest = (dir: string): number => {
    let t = 0;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      t = Math.max(t, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
    }
    return t;
  };
  const built = (f: string) => (fs.existsSync(path.join(ROOT, f)) ? fs.statSync(path.join(ROOT, f)).mtimeMs : 0);
  const sources = Math.max(newest(path.join(ROOT, 'src')), newest(path.join(ROOT, 'web')), newest(path.join(ROOT, 'migrations')));
  if (built('dist/src/cli.js') < sources || built('dist/web/index.html') < sources) {
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
  }
}

/** A plain HTTPS request (node:https, trusting only Tresor's CA), outside the browser. */
function plainRequest(server: ServeProcess, method: string, urlPath: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(`${server.url}${urlPath}`, { method, ca: server.caPem, headers: { accept: 'application/json', ...headers } }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('the console in Chromium', () => {
  let server: ServeProcess;
  let browser: Browser;
  const sessions: Session[] = [];
  let step = 0;

  async function shot(page: Page, name: string): Promise<void> {
    step += 1;
    await page.screenshot({ path: path.join(ARTIFACTS, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
  }

  async function open(viewport = { width: 1280, height: 800 }): Promise<Session> {
    const context = await browser.newContext({ viewport, acceptDownloads: true, baseURL: server.url });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
    });
    const s = { context, page, problems };
    sessions.push(s);
    return s;
  }

  async function logIn(page: Page, username: string, password: string): Promise<void> {
    await page.goto('/');
    await page.getByLabel('User name').fill(username);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Log in' }).click();
  }

  async function heading(page: Page, name: string): Promise<void> {
    await page.getByRole('heading', { level: 1, name }).waitFor();
  }

  /** Neither storage holds anything that looks like a session secret, and the URL carries none. */
  async function expectNoSecretsInStorage(s: Session): Promise<void> {
    const cookie = (await s.context.cookies()).find((c) => c.name === COOKIE);
    expect(cookie, 'the session cookie').toBeDefined();
    expect(cookie!.httpOnly).toBe(true);
    expect(cookie!.secure).toBe(true);
    expect(cookie!.sameSite).toBe('Strict');
    const csrf = await s.page.evaluate(async () => ((await (await fetch('/auth/session')).json()) as { csrfToken: string }).csrfToken);
    const stored = await s.page.evaluate(() => {
      const dump = (st: Storage) => Array.from({ length: st.length }, (_, i) => `${st.key(i)}=${st.getItem(st.key(i)!)}`).join('\n');
      return { local: dump(localStorage), session: dump(sessionStorage), url: location.href, cookie: document.cookie };
    });
    for (const secret of [cookie!.value, csrf]) {
      expect(stored.local).not.toContain(secret);
      expect(stored.session).not.toContain(secret);
      expect(stored.url).not.toContain(secret);
    }
    // HttpOnly: the page's script cannot read the session cookie at all.
    expect(stored.cookie).not.toContain(COOKIE);
    expect(s.page.url()).not.toMatch(/token|session|csrf|password/i);
  }

  beforeAll(async () => {
    requireChromium();
    ensureBuilt();
    fs.rmSync(ARTIFACTS, { recursive: true, force: true });
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    server = await startServe();
    browser = await launchChromium(spkiHash(server.serverCertPem), spkiHash(server.serverEcCertPem));
  }, 600_000);

  afterAll(async () => {
    for (const s of sessions) await s.context.close().catch(() => undefined);
    await browser?.close();
    await server?.stop();
  });

  it('serves the console at / with a strict Content-Security-Policy and no inline code', async () => {
    const r = await plainRequest(server, 'GET', '/', { accept: 'text/html' });
    expect(r.status).toBe(200);
    expect(String(r.headers['content-type'])).toMatch(/^text\/html/);
    const csp = String(r.headers['content-security-policy']);
    expect(csp).toMatch(/default-src 'self'/);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|https?:\/\//);
    // Every script and style comes from /assets (CSP forbids inline ones, so none are needed).
    expect(r.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(r.body).not.toMatch(/<style|style="/);
    // Unauthenticated API calls still get 401 JSON.
    const api = await plainRequest(server, 'GET', '/admin/users');
    expect(api.status).toBe(401);
    expect(String(api.headers['content-type'])).toMatch(/^application\/json/);
  });

  it('the bootstrap admin logs in and must choose a new password first', async () => {
    const { page } = await open();
    const res = await page.goto('/');
    expect(res!.headers()['content-security-policy']).toMatch(/default-src 'self'/);
    await heading(page, 'Tresor');
    await shot(page, 'login');
    await logIn(page, 'admin', server.initialAdminPassword);
    await heading(page, 'Choose your own password');
    // No navigation until the password is changed.
    expect(await page.getByRole('link', { name: 'Studies' }).count()).toBe(0);
    await page.getByLabel('Current password').fill(server.initialAdminPassword);
    await page.getByLabel('New password', { exact: true }).fill('admin-is-short');
    await page.getByLabel('New password again').fill('admin-is-short');
    await shot(page, 'forced-password-change-rules');
    await page.getByRole('button', { name: 'Change password' }).click();
    await textOf(page.getByRole('alert')).toMatch('does not meet the rules');
    await page.getByLabel('New password', { exact: true }).fill(ADMIN_NEW_PASSWORD);
    await page.getByLabel('New password again').fill(ADMIN_NEW_PASSWORD);
    await page.getByRole('button', { name: 'Change password' }).click();
    await heading(page, 'Studies');
    await seen(page.getByText('There are no studies yet'));
    await shot(page, 'studies-empty-admin');
    // The generated password no longer works.
    const old = await plainRequest(server, 'GET', '/auth/session');
    expect(old.status).toBe(401);
  });

  it('the admin creates two departments', async () => {
    const { page } = sessions[0];
    await nav(page, 'Departments').click();
    await heading(page, 'Departments');
    await page.getByLabel('Name').fill('bad/name');
    await page.getByRole('button', { name: 'Add department' }).click();
    await seen(page.getByText('A department name is 1–64 letters'));
    for (const name of ['Radiology', 'Cardiology']) {
      await page.getByLabel('Name').fill(name);
      await page.getByRole('button', { name: 'Add department' }).click();
      await textOf(page.getByRole('status')).toMatch(`Department "${name}" was added`);
    }
    await seen(page.getByRole('cell', { name: 'Radiology' }));
    await shot(page, 'departments');
  });

  it('the admin creates users with roles', async () => {
    const { page } = sessions[0];
    await nav(page, 'Users').click();
    await heading(page, 'Users');
    const users: [string, string, string][] = [
      ['rita', 'Radiology', 'reader'],
      ['carl', 'Cardiology', 'reader'],
      ['rad.admin', 'Radiology', 'admin'],
      ['dave', 'Radiology', 'reader'],
    ];
    for (const [username, department, role] of users) {
      const form = await openCard(page, 'Add a user');
      await form.getByLabel('User name').fill(username);
      await form.getByLabel('Password', { exact: true }).fill(PASSWORD);
      await form.getByLabel('Department', { exact: true }).selectOption(department);
      await form.getByLabel('Role', { exact: true }).selectOption(role);
      await form.getByRole('button', { name: 'Add role' }).click();
      if (username === 'rita') await shot(page, 'user-create-form');
      await form.getByRole('button', { name: 'Create user' }).click();
      await textOf(page.getByRole('status')).toMatch(`User "${username}" was created`);
    }
    await textOf(page.getByRole('row', { name: /rita/ })).toMatch('Radiology: reader');
    await shot(page, 'users');
  });

  it('the admin adds a device on the Devices page', async () => {
    const { page } = sessions[0];
    await nav(page, 'Devices').click();
    await heading(page, 'Devices');
    const form = await openCard(page, 'Add a device');
    await form.getByLabel('AE title').fill('WORKSTATION1');
    await form.getByLabel('Department', { exact: true }).selectOption('Radiology');
    await form.getByLabel('Role', { exact: true }).selectOption('reader');
    await form.getByLabel('Host').fill('127.0.0.1');
    await form.getByLabel('Port').fill('70000');
    await form.getByRole('button', { name: 'Add device' }).click();
    await seen(form.getByText('The port is a number from 1 to 65535'));
    await form.getByLabel('Port').fill('11112');
    await form.getByRole('button', { name: 'Add device' }).click();
    await textOf(page.getByRole('status')).toMatch('WORKSTATION1 was added');
    await textOf(page.getByRole('row', { name: /WORKSTATION1/ })).toMatch('127.0.0.1:11112');
    await shot(page, 'devices');
  });

  let bundleDir: string;
  it('the admin enrols a modality in one screen and downloads its bundle', async () => {
    const { page } = sessions[0];
    await nav(page, 'Enrol a modality').click();
    await heading(page, 'Enrol a modality');
    await page.getByLabel('AE title').fill('CT_SCANNER');
    await page.getByLabel('Department', { exact: true }).selectOption('Radiology');
    await page.getByLabel('Role', { exact: true }).selectOption('writer');
    await shot(page, 'enrol-form');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Enrol and download the bundle' }).click()]);
    const zip = path.join(server.dataDir, download.suggestedFilename());
    await download.saveAs(zip);
    expect(download.suggestedFilename()).toMatch(/\.zip$/);
    await textOf(page.getByRole('status')).toMatch('CT_SCANNER is enrolled');
    await shot(page, 'enrol-done');
    bundleDir = path.join(server.dataDir, 'bundle');
    fs.mkdirSync(bundleDir);
    execFileSync('unzip', ['-q', zip, '-d', bundleDir]);
    const files = fs.readdirSync(bundleDir, { recursive: true }).map(String);
    expect(files).toEqual(expect.arrayContaining(['storescu.sh', 'orthanc.json']));
    expect(files.some((f) => f.endsWith('.key'))).toBe(true);
    // The device now has a certificate.
    await nav(page, 'Devices').click();
    await textOf(page.getByRole('row', { name: /CT_SCANNER/ })).toMatch('until');
  });

  it("the bundle's files, unchanged, send a CT and an MR with storescu over TLS", async () => {
    const script = fs.readdirSync(bundleDir, { recursive: true }).map(String).find((f) => f.endsWith('storescu.sh'))!;
    const r = await run('sh', [path.join(bundleDir, script), '-v', CT, MR], { timeoutMs: 120_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect((r.stdout + r.stderr).match(/Received Store Response \(Success\)/g)?.length).toBe(2);
  });

  // Issue 12: the console offers the edge bundle too. A modality without TLS (plain
  // storescu) stores through `tresor edge` started from the downloaded ZIP, unchanged,
  // and the Edges page then lists the edge with the device and its last contact.
  let edgeProcess: ChildProcess | undefined;
  afterAll(() => {
    edgeProcess?.kill('SIGTERM');
  });
  it('the admin enrols a modality without TLS through an edge; the edge from its ZIP relays a plain storescu', async () => {
    const { page } = sessions[0];
    const edgePort = await freePort();
    await nav(page, 'Enrol a modality').click();
    await heading(page, 'Enrol a modality');
    await page.getByLabel('AE title').fill('US_OLD');
    await page.getByLabel('Department', { exact: true }).selectOption('Radiology');
    await page.getByLabel('Role', { exact: true }).selectOption('writer');
    await page.getByLabel('The modality cannot use TLS: connect it through an edge').check();
    // A non-loopback listener needs the modality's address: the form says so before anything is issued.
    await page.getByLabel('Edge listens on').fill(`0.0.0.0:${edgePort}`);
    await page.getByRole('button', { name: 'Enrol and download the bundle' }).click();
    await seen(page.getByText('Enter the address of the device'));
    await page.getByLabel('Edge listens on').fill(`127.0.0.1:${edgePort}`);
    await shot(page, 'enrol-edge-form');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Enrol and download the bundle' }).click()]);
    expect(download.suggestedFilename()).toBe('US_OLD-edge-bundle.zip');
    const zip = path.join(server.dataDir, download.suggestedFilename());
    await download.saveAs(zip);
    await textOf(page.getByRole('status')).toMatch('US_OLD is enrolled');
    await shot(page, 'enrol-edge-done');
    const dir = path.join(server.dataDir, 'edge-bundle');
    fs.mkdirSync(dir);
    execFileSync('unzip', ['-q', zip, '-d', dir]);
    const config = fs.readdirSync(dir, { recursive: true }).map(String).find((f) => f.endsWith('edge.json'))!;
    expect(config).toBeDefined();
    const key = fs.readdirSync(dir, { recursive: true }).map(String).find((f) => f.endsWith('.key'))!;
    // unzip keeps the mode the ZIP records: the key must arrive private, or the edge refuses to start.
    expect(fs.statSync(path.join(dir, key)).mode & 0o077).toBe(0);
    edgeProcess = spawn(process.execPath, [path.join(ROOT, 'dist/src/cli.js'), 'edge', '--config', path.join(dir, config)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let edgeLog = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the edge did not start: ${edgeLog}`)), 30_000);
      const onData = (c: Buffer) => {
        edgeLog += String(c);
        if (edgeLog.includes('tresor edge listening')) {
          clearTimeout(t);
          resolve();
        }
      };
      edgeProcess!.stdout!.on('data', onData);
      edgeProcess!.stderr!.on('data', onData);
      edgeProcess!.once('exit', (code) => (clearTimeout(t), reject(new Error(`the edge exited (${code}): ${edgeLog}`))));
    });
    // The modality: plain DICOM, no certificate, as AE US_OLD, to the edge.
    const r = await run('storescu', ['-v', '-aet', 'US_OLD', '-aec', 'TRESOR', '127.0.0.1', String(edgePort), MR], { timeoutMs: 60_000 });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/Received Store Response \(Success\)/);
    // Another calling AE through the same edge is rejected before anything reaches Tresor.
    const wrong = await run('echoscu', ['-v', '-aet', 'INTRUDER', '-aec', 'TRESOR', '127.0.0.1', String(edgePort)], { timeoutMs: 30_000 });
    expect(wrong.code).not.toBe(0);
    expect(wrong.stdout + wrong.stderr).toMatch(/Association Rejected/);
    await nav(page, 'Edges').click();
    await heading(page, 'Edges');
    await textOf(page.getByRole('row', { name: /US_OLD/ })).toMatch(/EDGE/);
    await shot(page, 'edges-with-device');
  });

  it('the department user finds the study, downloads its ZIP, and sees no administration', async () => {
    const s = await open();
    const { page } = s;
    await logIn(page, 'rita', PASSWORD);
    await heading(page, 'Studies');
    const row = page.getByRole('row', { name: /CompressedSamples/ }).first();
    await textOf(row).toMatch('CT');
    await textOf(row).toMatch('2004-01-19');
    await shot(page, 'studies-reader');
    // Search by patient name (fuzzy, case-insensitive) and by modality.
    await page.getByLabel('Patient name').fill('compressed');
    await page.getByLabel('Modality').selectOption('CT');
    await page.getByRole('button', { name: 'Search' }).click();
    await seen(page.getByText('Showing 1–1'));
    expect(await page.getByRole('link', { name: /Open the study .* in the viewer/ }).getAttribute('href')).toBe(`/viewer/viewer?StudyInstanceUIDs=${CT_STUDY}`);
    await shot(page, 'studies-search');
    await page.getByLabel('Modality').selectOption('MR');
    await page.getByLabel('Patient name').fill('');
    await page.getByRole('button', { name: 'Search' }).click();
    await seen(page.getByText('Showing 1–1'));
    await page.getByLabel('Modality').selectOption('US');
    await page.getByRole('button', { name: 'Search' }).click();
    await seen(page.getByText('No study matches'));
    await page.getByRole('button', { name: 'Clear' }).click();
    await seen(page.getByText('Showing 1–2'));

    // A reader may not delete: no Delete button.
    expect(await page.getByRole('button', { name: /Delete/ }).count()).toBe(0);

    // ZIP of the CT study: a real ZIP holding the one DICOM file.
    const ctRow = page.getByRole('row', { name: /2004-01-19/ });
    const [download] = await Promise.all([page.waitForEvent('download'), ctRow.getByRole('link', { name: /Download/ }).click()]);
    const zip = path.join(server.dataDir, 'study.zip');
    await download.saveAs(zip);
    const listing = execFileSync('unzip', ['-l', zip], { encoding: 'utf8' });
    expect(listing).toMatch(/\b1 file\b/);
    const out = path.join(server.dataDir, 'study');
    execFileSync('unzip', ['-q', zip, '-d', out]);
    const dcm = fs.readdirSync(out, { recursive: true }).map(String).find((f) => fs.statSync(path.join(out, f)).isFile())!;
    expect(fs.readFileSync(path.join(out, dcm)).subarray(128, 132).toString('latin1')).toBe('DICM');

    // No administration in the navigation, and the pages say so if opened directly.
    for (const name of ['Users', 'Devices', 'Departments', 'Enrol a modality', 'Audit log', 'System']) {
      expect(await page.getByRole('link', { name, exact: true }).count(), name).toBe(0);
    }
    await page.goto('/#/admin/users');
    await seen(page.getByText('This page is for administrators'));
    await shot(page, 'reader-admin-page-refused');
    // The server refuses the reader on the admin API whatever the page shows.
    const statuses = await page.evaluate(async () => {
      const out: Record<string, number> = {};
      for (const p of ['/admin/users', '/admin/devices', '/admin/departments', '/admin/audit', '/admin/edges', '/console/api/system']) out[p] = (await fetch(p)).status;
      return out;
    });
    for (const [p, status] of Object.entries(statuses)) expect([403, 404], `${p}: ${status}`).toContain(status);
    await expectNoSecretsInStorage(s);
  });

  it('the user opens the CT from the list in the viewer: same session, no second login, the image is drawn', async () => {
    const s = sessions[sessions.length - 1];
    await s.page.goto('/#/studies');
    await heading(s.page, 'Studies');
    const ctRow = s.page.getByRole('row', { name: /2004-01-19/ });
    // The link opens a new tab (target=_blank): the viewer runs on the console's cookie.
    const [viewer] = await Promise.all([s.context.waitForEvent('page'), ctRow.getByRole('link', { name: /in the viewer/ }).click()]);
    viewer.on('pageerror', (e) => s.problems.push(`viewer page error: ${e.message}`));
    await viewer.waitForLoadState();
    expect(new URL(viewer.url()).pathname).toBe('/viewer/viewer');
    const canvas = viewer.locator('canvas.cornerstone-canvas').first();
    await canvas.waitFor({ state: 'visible', timeout: 60_000 });
    // A drawn CT has many grey levels; a blank or failed viewport has one or two colours.
    await expect.poll(async () => distinctColours(pixelsOf(await canvas.screenshot())), { timeout: 60_000, interval: 500 }).toBeGreaterThan(8);
    // No first-visit tour over the image (app-config.ts turns OHIF's tours off).
    await viewer.waitForTimeout(1000);
    expect(await viewer.getByText('Skip all').count()).toBe(0);
    expect(await viewer.getByText(/not available|error/i).count()).toBe(0);
    await shot(viewer, 'viewer-from-console');
    await viewer.close();
  });

  it('logout ends the session: the old cookie gets 401 from a plain HTTPS client', async () => {
    const s = sessions[sessions.length - 1];
    const cookie = (await s.context.cookies()).find((c) => c.name === COOKIE)!;
    const before = await plainRequest(server, 'GET', '/auth/session', { cookie: `${COOKIE}=${cookie.value}` });
    expect(before.status).toBe(200);
    await s.page.goto('/#/studies');
    await s.page.getByRole('button', { name: 'Log out' }).click();
    await heading(s.page, 'Tresor');
    await seen(s.page.getByText('You have logged out'));
    await shot(s.page, 'logged-out');
    for (const p of ['/auth/session', '/dicomweb/studies', `/console/api/studies/${CT_STUDY}/zip`]) {
      const after = await plainRequest(server, 'GET', p, { cookie: `${COOKIE}=${cookie.value}` });
      expect(after.status, p).toBe(401);
    }
  });

  it("a user of another department sees none of Radiology's studies", async () => {
    const { page } = await open();
    await logIn(page, 'carl', PASSWORD);
    await heading(page, 'Studies');
    await seen(page.getByText('There are no studies yet'));
    await shot(page, 'studies-other-department');
    const r = await page.evaluate(async (uid) => {
      const q = await fetch('/dicomweb/studies?PatientName=*', { headers: { accept: 'application/dicom+json' } });
      const meta = await fetch(`/dicomweb/studies/${uid}/metadata`, { headers: { accept: 'application/dicom+json' } });
      const zip = await fetch(`/console/api/studies/${uid}/zip`);
      return { qido: q.status === 200 ? ((await q.json()) as unknown[]).length : -q.status, meta: meta.status, zip: zip.status };
    }, CT_STUDY);
    expect(r).toEqual({ qido: 0, meta: 404, zip: 404 });
  });

  it('a department admin deletes a study after a confirmation that shows what goes', async () => {
    const { page } = await open();
    await logIn(page, 'rad.admin', PASSWORD);
    await heading(page, 'Studies');
    const mrRow = page.getByRole('row', { name: /MR/ }).filter({ hasNot: page.getByRole('columnheader') });
    await mrRow.getByRole('button', { name: /Delete/ }).click();
    const dialog = page.getByRole('dialog', { name: 'Delete this study?' });
    await textOf(dialog).toMatch(MR_STUDY);
    await textOf(dialog).toMatch('1 image');
    expect(await dialog.getByRole('button', { name: 'Cancel' }).evaluate((el) => el === document.activeElement)).toBe(true);
    await shot(page, 'delete-confirmation');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden', timeout: WAIT.timeout });
    await seen(page.getByText('Showing 1–2'));
    await mrRow.getByRole('button', { name: /Delete/ }).click();
    await dialog.getByRole('button', { name: 'Delete study' }).click();
    await textOf(page.getByRole('status')).toMatch('was deleted');
    await seen(page.getByText('Showing 1–1'));
    await shot(page, 'study-deleted');
  });

  it('a locked account is told when to retry; an administrator unlocks it', async () => {
    const { page } = await open();
    await page.goto('/');
    for (let i = 0; i < 6; i++) {
      await page.getByLabel('User name').fill('dave');
      await page.getByLabel('Password').fill(`wrong-password-${i}`);
      await page.getByRole('button', { name: 'Log in' }).click();
      await seen(page.getByRole('alert'));
      if (i < 5) await textOf(page.getByRole('alert')).toMatch(i < 4 ? 'not right' : /not right|locked/);
    }
    await textOf(page.getByRole('alert')).toMatch(/locked after too many failed attempts\. Try again at \d\d:\d\d \(in \d+ minutes?\)/);
    await shot(page, 'locked');
    // The admin unlocks dave on the Users page; the right password works again.
    const admin = sessions[0].page;
    await nav(admin, 'Users').click();
    await admin.getByRole('row', { name: /dave/ }).getByRole('button', { name: 'Unlock dave after failed logins' }).click();
    await textOf(admin.getByRole('status')).toMatch('"dave" is unlocked');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Log in' }).click();
    await heading(page, 'Studies');
  });

  it('an ended session sends the page back to the login with a message', async () => {
    const s = sessions[sessions.length - 1];
    // End dave's session from outside the page (as the idle timeout or a logout elsewhere does).
    const cookie = (await s.context.cookies()).find((c) => c.name === COOKIE)!;
    const csrf = await s.page.evaluate(async () => ((await (await fetch('/auth/session')).json()) as { csrfToken: string }).csrfToken);
    const r = await plainRequest(server, 'DELETE', '/auth/session', { cookie: `${COOKIE}=${cookie.value}`, 'x-csrf-token': csrf, origin: server.url });
    expect(r.status).toBe(204);
    await s.page.getByRole('button', { name: 'Search' }).click();
    await heading(s.page, 'Tresor');
    await seen(s.page.getByText('Your session has ended'));
    await shot(s.page, 'session-ended');
  });

  it('the admin reads the audit log, whose hash chain verifies, and the system page', async () => {
    const { page } = sessions[0];
    await nav(page, 'Audit log').click();
    await heading(page, 'Audit log');
    await seen(page.getByText('The audit trail is intact'));
    await page.getByLabel('Actor').fill('rita');
    await page.getByRole('button', { name: 'Filter' }).click();
    await seen(page.getByRole('row', { name: /login/ }).first());
    await shot(page, 'audit');
    await nav(page, 'System').click();
    await heading(page, 'System');
    await textOf(page.getByRole('row', { name: /Database/ })).toMatch('working');
    await shot(page, 'system');
    await nav(page, 'Edges').click();
    await heading(page, 'Edges');
    await shot(page, 'edges');
  });

  it('works at tablet width (800 px) and with the keyboard', async () => {
    const { page } = await open({ width: 800, height: 1180 });
    await logIn(page, 'admin', ADMIN_NEW_PASSWORD);
    await heading(page, 'Studies');
    await shot(page, 'tablet-studies');
    // Nothing wider than the screen but the scrollable table region.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.goto('/#/admin/users');
    await heading(page, 'Users');
    await shot(page, 'tablet-users');
    // Keyboard: a page starts with the focus on its heading; Tab goes on to the first search field.
    await page.goto('/#/studies');
    await heading(page, 'Studies');
    expect(await page.evaluate(() => document.activeElement?.tagName)).toBe('H1');
    await page.keyboard.press('Tab');
    const focused = await page.evaluate(() => (document.activeElement as HTMLInputElement | null)?.labels?.[0]?.textContent ?? '');
    expect(focused).toMatch(/^Patient name/);
  });

  it('no page error or CSP violation happened in any session', () => {
    expect(sessions.flatMap((s) => s.problems)).toEqual([]);
    // The server log holds no patient name.
    expect(server.log()).not.toMatch(/CompressedSamples/i);
  });
});
