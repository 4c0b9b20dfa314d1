/**
 * Fauxton 1.2.6 at `/_utils/` on a real three-node cluster. It checks how the files are served
 * (redirect, MIME types, cache and content-security headers, confinement, no authentication)
 * and the Fauxton-only routes (`//_cluster_setup`, `_config`, `_scheduler`). In headless
 * Chromium it opens the databases list, creates a database, creates and edits a document, and
 * finds it in all documents and changes, with screenshots.
 *
 * `_session` is not served by this branch, so the browser tests fulfil Fauxton's
 * `GET /_session` inside the browser with an admin session and send the admin's Basic
 * credentials on every request. The login test through Fauxton's form runs once the server
 * implements `_session`.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import type { Page } from 'playwright-core';
import { request } from 'undici';
import { fauxtonInstalled, fauxtonRoot } from '../../src/ops/fauxton.js';
import { ADMIN, TestCluster, type TestNode, waitFor } from '../support/cluster.js';
import { launchBrowser, screenshot } from './browser.js';

const AUTHORIZATION = `Basic ${Buffer.from(`${ADMIN.name}:${ADMIN.password}`).toString('base64')}`;
const MISSING_FAUXTON =
  'Fauxton is not installed (the registry was unreachable when `npm install` ran): ' +
  'run `npm run fetch-fauxton` to run these tests';
const DB = 'fauxton-db';
const DOC_ID = 'doc-1';
/** Generous, because the suite runs on 2 cores next to other clusters. */
const UI_TIMEOUT_MS = 30_000;

/** The admin session Fauxton expects from `GET /_session`, for a server without the route. */
const ADMIN_SESSION = {
  ok: true,
  userCtx: { name: ADMIN.name, roles: ['_admin'] },
  info: { authentication_handlers: ['cookie', 'default'], authenticated: 'default' },
};

async function anonymous(node: TestNode, path: string, method = 'GET') {
  const response = await request(`${node.url}${path}`, { method: method as 'GET' });
  const body = await response.body.text();
  return { status: response.statusCode, headers: response.headers, body };
}

/** Replaces the text of Fauxton's Ace editor with `text`. */
async function replaceEditorText(page: Page, text: string): Promise<void> {
  await page.locator('.ace_content').click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

/**
 * Waits until Fauxton has left the document editor after a save and listed the database's
 * documents, so the next navigation does not race its own.
 */
async function fauxtonSettled(page: Page): Promise<void> {
  await waitFor('Fauxton back on the documents list', () =>
    new RegExp(`#/?database/${DB}/_all_docs`).test(page.url()),
  );
  await page.locator('.loading-lines').first().waitFor({ state: 'detached' });
}

async function sessionAvailable(node: TestNode): Promise<boolean> {
  const reply = await anonymous(node, '/_session');
  return reply.status === 200 && reply.body.includes('userCtx');
}

/** Milliseconds per copied document: 400 documents keep a compaction running for 20 s. */
const COMPACTION_DELAY_MS = 50;
const COMPACTED_DOCS = 400;

test('fauxton at _utils', async (t) => {
  if (!fauxtonInstalled()) {
    t.skip(MISSING_FAUXTON);
    return;
  }
  // Compaction is slowed so the active tasks screen can show one running.
  const cluster = await TestCluster.start(t, {
    env: { DIVAN_TEST_COMPACTION_DELAY_MS: String(COMPACTION_DELAY_MS) },
  });
  const [n1, n2] = cluster.nodes as [TestNode, TestNode, TestNode];
  assert.equal((await cluster.httpRetry(n1, 'PUT', '/existing')).status, 201);

  await t.test('files served like couchdb', async () => {
    const bare = await anonymous(n1, '/_utils');
    assert.equal(bare.status, 301);
    assert.equal(bare.headers.location, '/_utils/');
    const index = await anonymous(n1, '/_utils/');
    assert.equal(index.status, 200);
    assert.match(String(index.headers['content-type']), /^text\/html/);
    assert.equal(index.headers['cache-control'], 'private, must-revalidate');
    assert.match(
      String(index.headers['content-security-policy']),
      /script-src 'self' 'unsafe-eval'/,
    );
    assert.match(index.body, /Project Fauxton/);
    const script = index.body.match(/dashboard\.assets\/js\/bundle\.[0-9a-f]+\.js/);
    assert.ok(script !== null, 'index.html names its bundle');
    const bundle = await anonymous(n1, `/_utils/${script[0]}`);
    assert.equal(bundle.headers['content-type'], 'application/javascript');
    const style = index.body.match(/dashboard\.assets\/css\/styles\.[0-9a-f]+\.css/)![0];
    assert.match(
      String((await anonymous(n1, `/_utils/${style}`)).headers['content-type']),
      /^text\/css/,
    );
    const head = await anonymous(n1, '/_utils/', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal((await anonymous(n1, '/_utils/', 'POST')).status, 405);
    for (const path of ['/_utils/..%2F..%2Fpackage.json', '/_utils/.hidden', '/_utils/nope.js']) {
      assert.equal((await anonymous(n1, path)).status, 404, path);
    }
    assert.ok(existsSync(join(fauxtonRoot(), '..', 'LICENSE')), 'the license is kept');
  });

  await t.test('fauxton server routes', async () => {
    const setup = await request(`${n1.url}//_cluster_setup`, {
      headers: { authorization: AUTHORIZATION },
    });
    assert.equal(setup.statusCode, 200);
    assert.deepEqual(await setup.body.json(), { state: 'cluster_finished' });
    const config = await cluster.http(n2, 'GET', '/_node/n2/_config');
    assert.equal(config.status, 200);
    const sections = config.json as Record<string, Record<string, string>>;
    assert.equal(sections.chttpd!.port, String(n2.httpPort));
    const value = await cluster.http(n2, 'GET', '/_node/_local/_config/couchdb/max_document_size');
    assert.equal(typeof value.json, 'string');
    const write = await cluster.http(n2, 'PUT', '/_node/_local/_config/log/level', '"debug"');
    assert.equal(write.status, 403);
    const jobs = await cluster.http(n1, 'GET', '/_scheduler/jobs');
    assert.equal(jobs.status, 501);
    assert.equal((jobs.json as { error: string }).error, 'not_implemented');
  });

  const browser = await launchBrowser(t);
  if (browser === null) return;

  await t.test('log in through fauxton', async (st: TestContext) => {
    if (!(await sessionAvailable(n1))) {
      st.todo('GET /_session is not served by this build; the login form needs it');
      return;
    }
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${n1.url}/_utils/#/login`);
    await page.fill('#username', ADMIN.name);
    await page.fill('#password', ADMIN.password);
    await page.click('#submit');
    await page.getByText('existing').first().waitFor({ timeout: UI_TIMEOUT_MS });
    await screenshot(st, page, 'fauxton-logged-in');
    await context.close();
  });

  const context = await browser.newContext({
    extraHTTPHeaders: { authorization: AUTHORIZATION },
    viewport: { width: 1280, height: 900 },
  });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (error) => pageErrors.push(error.message));
  if (!(await sessionAvailable(n1))) {
    await page.route('**/_session', (route) =>
      route.fulfill({
        status: 200,
        contentType: 'application/json',
        body: JSON.stringify(ADMIN_SESSION),
      }),
    );
  }

  await t.test('databases list', async (st) => {
    await page.goto(`${n1.url}/_utils/`);
    await page.locator('a', { hasText: 'existing' }).waitFor();
    await screenshot(st, page, 'fauxton-databases');
  });

  await t.test('create a database', async (st) => {
    await page.getByText('Create Database').click();
    await page.fill('#js-new-database-name', DB);
    await page.click('#js-create-database');
    await waitFor('the new database opened', () =>
      new RegExp(`#/?database/${DB}/_all_docs`).test(page.url()),
    );
    await screenshot(st, page, 'fauxton-database-created');
    const info = await cluster.http(n2, 'GET', `/${DB}`);
    assert.equal(info.status, 200);
  });

  await t.test('create a document', async (st) => {
    await page.goto(`${n1.url}/_utils/#/database/${DB}/_new`);
    await page.locator('.ace_content').waitFor();
    await replaceEditorText(page, JSON.stringify({ _id: DOC_ID, color: 'blue' }, null, 2));
    await screenshot(st, page, 'fauxton-new-document');
    await page.click('button.save-doc');
    await waitFor('the document stored', async () => {
      const doc = await cluster.http(n2, 'GET', `/${DB}/${DOC_ID}`);
      return doc.status === 200 && (doc.json as { color: string }).color === 'blue';
    });
    await fauxtonSettled(page);
  });

  await t.test('edit a document', async (st) => {
    const before = (await cluster.http(n1, 'GET', `/${DB}/${DOC_ID}`)).json as { _rev: string };
    await page.goto(`${n1.url}/_utils/#/database/${DB}/${DOC_ID}`);
    await page.locator('.ace_content', { hasText: before._rev }).waitFor();
    const edited = { _id: DOC_ID, _rev: before._rev, color: 'green', size: 3 };
    await replaceEditorText(page, JSON.stringify(edited, null, 2));
    await page.click('button.save-doc');
    await waitFor('the edit stored', async () => {
      const doc = (await cluster.http(n2, 'GET', `/${DB}/${DOC_ID}`)).json as {
        _rev: string;
        color: string;
      };
      return doc.color === 'green' && doc._rev.startsWith('2-');
    });
    await fauxtonSettled(page);
    await page.goto(`${n1.url}/_utils/#/database/${DB}/${DOC_ID}`);
    await page.locator('.ace_content', { hasText: 'green' }).waitFor();
    await screenshot(st, page, 'fauxton-edited-document');
  });

  await t.test('document in all docs', async (st) => {
    await page.goto(`${n1.url}/_utils/#/database/${DB}/_all_docs`);
    await page.getByText(DOC_ID).first().waitFor();
    await screenshot(st, page, 'fauxton-all-docs');
  });

  await t.test('document in changes', async (st) => {
    await page.goto(`${n1.url}/_utils/#/database/${DB}/_changes`);
    await page.getByText(DOC_ID).first().waitFor();
    await screenshot(st, page, 'fauxton-changes');
  });

  await t.test('change permissions', async (st) => {
    await page.goto(`${n1.url}/_utils/#/database/${DB}/permissions`);
    const adminRole = page.getByPlaceholder('Role').first();
    await adminRole.fill('ops');
    await page.getByText('Add Role').first().click();
    await waitFor('the admins role stored', async () => {
      const security = await cluster.http(n2, 'GET', `/${DB}/_security`);
      const admins = (security.json as { admins?: { roles?: string[] } }).admins;
      return admins?.roles?.includes('ops') === true;
    });
    await screenshot(st, page, 'fauxton-permissions');
  });

  await t.test('setup reports finished', async (st) => {
    await page.goto(`${n1.url}/_utils/#/setup`);
    await page.getByText('configured for production usage as a clustered node').waitFor();
    await screenshot(st, page, 'fauxton-setup');
  });

  await t.test('replication without a scheduler', async (st) => {
    await page.goto(`${n1.url}/_utils/#/replication`);
    await page.getByText('There is no replicator-db activity').waitFor();
    await screenshot(st, page, 'fauxton-replication');
  });

  await t.test('mango and views not available', async (st) => {
    await page.goto(`${n1.url}/_utils/#/database/${DB}/_find`);
    await page.getByText('Run Query').click();
    await page
      .getByText(/not_implemented/)
      .first()
      .waitFor();
    await screenshot(st, page, 'fauxton-mango');
    const view = await cluster.http(n1, 'GET', `/${DB}/_design/d/_view/v`);
    assert.equal(view.status, 501);
    assert.match((view.json as { reason: string }).reason, /_view/);
  });

  await t.test('active tasks screen shows a compaction', async (st: TestContext) => {
    const docs = Array.from({ length: COMPACTED_DOCS }, (_, i) => ({ _id: `c${i}`, i }));
    const bulk = await cluster.http(n1, 'POST', '/existing/_bulk_docs', { docs });
    assert.equal(bulk.status, 201, bulk.body);
    const started = await cluster.http(n1, 'POST', '/existing/_compact', {});
    assert.equal(started.status, 202, started.body);
    await page.goto(`${n1.url}/_utils/#/activetasks`);
    await page.getByText('Active Tasks').first().waitFor();
    await page.getByText('database_compaction').first().waitFor();
    await screenshot(st, page, 'fauxton-active-tasks');
  });

  await t.test('screens raise no script errors', () => {
    assert.deepEqual(pageErrors, []);
  });
});
