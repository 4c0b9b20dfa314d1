// The Divan cluster status page: polls GET /_divan/cluster and draws the nodes, the groups
// each leads, and every database's members, with leaderless groups and lagging or down
// members highlighted. Plain browser JavaScript, served as is (no build step).

const REFRESH_MS = 2000;
const PAGE_SIZE = 50;
const CREDENTIALS_KEY = 'divan-status-authorization';

const state = { skip: 0, authorization: sessionStorage.getItem(CREDENTIALS_KEY), timer: null };

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function formatRtt(ms) {
  return ms === null || ms === undefined ? '–' : `${ms.toFixed(2)} ms`;
}

function drawNodes(status) {
  const container = document.getElementById('nodes');
  container.replaceChildren();
  const mostLed = Math.max(1, ...status.nodes.map((node) => node.groups_led ?? 0));
  for (const node of status.nodes) {
    const card = element('div', node.reachable ? 'node' : 'node down');
    if (node.name === status.node) card.classList.add('self');
    card.dataset.node = node.name;
    card.append(element('h3', '', `${node.name} ${node.reachable ? 'up' : 'down'}`));
    const facts = element('dl');
    const add = (label, value) => facts.append(element('dt', '', label), element('dd', '', value));
    add('HTTP', node.http || '–');
    let link = 'this node';
    if (node.connected !== null) link = node.connected ? 'connected' : 'down';
    add('peer link', link);
    add('round trip', formatRtt(node.rtt_ms));
    add('groups led', node.groups_led ?? '–');
    add('groups open', node.groups_open ?? '–');
    add('without leader', node.groups_without_leader ?? '–');
    add('max apply lag', node.max_apply_lag ?? '–');
    add('snapshots in', node.snapshot_transfers ?? '–');
    if (node.error) add('error', node.error);
    card.append(facts);
    const bar = element('div', 'bar');
    const fill = element('span');
    fill.style.width = `${(100 * (node.groups_led ?? 0)) / mostLed}%`;
    bar.append(fill);
    card.append(bar);
    container.append(card);
  }
}

function memberCell(name, member, leader) {
  const kind = name === leader ? 'leader' : member.state;
  const cell = element('span', `cell ${kind}`);
  const applied = member.applied_index === undefined ? '' : ` ${member.applied_index}`;
  cell.textContent = `${member.role ?? member.state}${applied}`;
  cell.title = member.lag === undefined ? member.state : `${member.state}, ${member.lag} behind`;
  return cell;
}

function drawDatabases(status) {
  const nodeNames = status.nodes.map((node) => node.name);
  const head = document.querySelector('#databases thead');
  const headRow = element('tr');
  for (const title of ['database', 'leader', 'term', 'commit', ...nodeNames]) {
    headRow.append(element('th', '', title));
  }
  head.replaceChildren(headRow);

  const body = document.querySelector('#databases tbody');
  body.replaceChildren();
  for (const row of status.databases.rows) {
    const tr = element('tr', row.leaderless ? 'leaderless' : '');
    tr.dataset.db = row.db;
    tr.append(element('td', '', row.db));
    tr.append(element('td', 'leader-name', row.leader ?? 'none'));
    tr.append(element('td', '', row.term ?? '–'));
    tr.append(element('td', '', row.commit_index ?? '–'));
    for (const name of nodeNames) {
      const td = element('td');
      const member = row.members[name];
      if (member) td.append(memberCell(name, member, row.leader));
      tr.append(td);
    }
    body.append(tr);
  }
  const { total, skip, limit } = status.databases;
  const last = Math.min(total, skip + limit);
  document.getElementById('page-info').textContent = `(${skip + 1}–${last} of ${total})`;
  document.getElementById('previous').disabled = skip === 0;
  document.getElementById('next').disabled = skip + limit >= total;
}

function drawSummary(status) {
  const up = status.nodes.filter((node) => node.reachable).length;
  const text = `${up} of ${status.nodes.length} nodes up, ${status.leaderless} database(s) on this page without a leader, as seen by ${status.node} at ${new Date().toLocaleTimeString()}`;
  const summary = document.getElementById('summary');
  summary.textContent = text;
  summary.className = status.leaderless > 0 || up < status.nodes.length ? 'error' : '';
}

async function refresh() {
  const headers = { accept: 'application/json' };
  if (state.authorization) headers.authorization = state.authorization;
  const errorLine = document.getElementById('error');
  try {
    const response = await fetch(`cluster?skip=${state.skip}&limit=${PAGE_SIZE}`, {
      headers,
      credentials: 'same-origin',
    });
    if (response.status === 401) {
      showLogin(state.authorization ? 'Name or password is incorrect.' : '');
      return;
    }
    if (!response.ok) throw new Error(`GET /_divan/cluster returned ${response.status}`);
    const status = await response.json();
    document.getElementById('login').hidden = true;
    document.getElementById('status').hidden = false;
    errorLine.textContent = '';
    drawSummary(status);
    drawNodes(status);
    drawDatabases(status);
  } catch (error) {
    errorLine.textContent = `The status could not be loaded: ${error.message}. Retrying.`;
  }
  schedule();
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(refresh, REFRESH_MS);
}

function showLogin(message) {
  clearTimeout(state.timer);
  document.getElementById('status').hidden = true;
  document.getElementById('login').hidden = false;
  document.getElementById('login-error').textContent = message;
  document.getElementById('summary').textContent = '';
}

document.getElementById('login').addEventListener('submit', (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const bytes = new TextEncoder().encode(`${form.get('name')}:${form.get('password')}`);
  state.authorization = `Basic ${btoa(String.fromCharCode(...bytes))}`;
  sessionStorage.setItem(CREDENTIALS_KEY, state.authorization);
  refresh();
});
document.getElementById('previous').addEventListener('click', () => {
  state.skip = Math.max(0, state.skip - PAGE_SIZE);
  refresh();
});
document.getElementById('next').addEventListener('click', () => {
  state.skip += PAGE_SIZE;
  refresh();
});
refresh();
