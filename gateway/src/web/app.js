// The built-in web client (GET /): log in or continue as a visitor, friends and groups,
// one-to-one and group chats with live delivery over /ws, catch-up through /api/chat/sync
// after being away, image upload. Plain DOM, no build step; user text is only ever set as
// textContent.
'use strict';

const $ = (id) => document.getElementById(id);
const state = { token: null, me: null, chat: null, ws: null, seen: new Set(), lastSeq: 0, unread: {}, counted: {}, closing: false };

async function api(path, body) {
  const options = { method: body === undefined ? 'GET' : 'POST', headers: {} };
  if (state.token) options.headers.token = state.token;
  if (body instanceof FormData) {
    options.body = body;
  } else if (body !== undefined) {
    options.headers['content-type'] = 'application/json';
    options.body = JSON.stringify(body);
  }
  const resp = await fetch(path, options);
  const fresh = resp.headers.get('x-refresh-token');
  if (fresh) saveToken(fresh);
  const json = await resp.json();
  if (json.msg !== 'ok') throw new Error(typeof json.data === 'string' ? json.data : '请求失败');
  return json.data;
}

function saveToken(token) {
  state.token = token;
  sessionStorage.setItem('im.token', token);
}

function seqKey() { return 'im.seq.' + state.me.id; }

function avatarOf(url, name) {
  if (/^(https?:\/\/|\/public\/)/.test(url || '')) {
    const img = document.createElement('img');
    img.className = 'avatar';
    img.src = url;
    img.alt = '';
    return img;
  }
  const span = document.createElement('span');
  span.className = 'avatar';
  span.textContent = (name || '?').slice(0, 1);
  return span;
}

// ---- log in ----
async function enter(user) {
  saveToken(user.token);
  state.me = user;
  sessionStorage.setItem('im.me', JSON.stringify(user));
  await start();
}

function failed(e) { $('login-error').textContent = e.message; }

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  // A browser is the desktop/web device (with IM_MULTI_DEVICE; ignored otherwise).
  api('/api/loginChat', { username: $('username').value, password: $('password').value, device_type: 'web' }).then(enter, failed);
});
$('register').addEventListener('click', () => {
  api('/api/regChat', { username: $('username').value, password: $('password').value }).then(enter, failed);
});
$('visitor').addEventListener('click', () => {
  let device = localStorage.getItem('im.device');
  if (!device) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    device = 'web-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    localStorage.setItem('im.device', device);
  }
  api('/api/visitorRegister', { devicefingeruuid: device }).then(enter, failed);
});
$('logout').addEventListener('click', async () => {
  try { await api('/api/chat/logout', {}); } catch (e) { /* the session may be gone already */ }
  leave();
});

function leave() {
  state.closing = true;
  if (state.ws) state.ws.close();
  sessionStorage.removeItem('im.token');
  sessionStorage.removeItem('im.me');
  location.reload();
}

// ---- the chat view ----
async function start() {
  $('login-view').hidden = true;
  $('chat-view').hidden = false;
  $('me-name').textContent = state.me.nickname || state.me.username;
  state.lastSeq = Number(localStorage.getItem(seqKey()) || 0);
  // (A visitor has no friend list: the route is for users; the page goes on without it.)
  await Promise.allSettled([loadFriends(), loadGroups()]);
  await loadUnread().catch(() => {});
  connect();
}

// The server's unread counts (kept across reloads and devices).
async function loadUnread() {
  const data = await api('/api/chat/conversations?limit=100');
  for (const c of data.rows || []) {
    const key = c.chatType + ':' + c.id;
    state.unread[key] = c.unread;
    // Rows up to here are in that count already (sync brings them again).
    state.counted[key] = c.last_seq;
    badge(key);
  }
}

// Tells the server (and the other party) that the open chat is read, up to `seq` or all.
function markRead(chat, seq) {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  const data = { chatType: chat.type, id: chat.id };
  if (seq) data.seq = seq;
  state.ws.send(JSON.stringify({ type: 'read', data }));
}

function listItem(key, name, avatar, open) {
  const li = document.createElement('li');
  li.dataset.key = key;
  li.appendChild(avatarOf(avatar, name));
  const label = document.createElement('span');
  label.textContent = name;
  li.appendChild(label);
  li.addEventListener('click', open);
  return li;
}

async function loadFriends() {
  const list = await api('/api/chat/goodfriendlist/1');
  const ul = $('friends');
  ul.replaceChildren();
  for (const group of list.rows || []) {
    for (const f of group.list || []) {
      const chat = { type: 'single', id: f.friend_id, name: f.name };
      ul.appendChild(listItem('single:' + f.friend_id, f.name, f.avatar, () => openChat(chat)));
    }
  }
}

async function loadGroups() {
  const data = await api('/api/chat/grouplist/1');
  const rows = Array.isArray(data) ? data : (data.rows || []);
  const ul = $('groups');
  ul.replaceChildren();
  for (const g of rows) {
    const chat = { type: 'group', id: g.id, name: g.name };
    ul.appendChild(listItem('group:' + g.id, g.name, g.avatar, () => openChat(chat)));
  }
}

function keyOf(m) {
  if (m.chatType === 'group') return 'group:' + m.to_id;
  const other = Number(m.from_id) === state.me.id ? m.to_id : m.from_id;
  return 'single:' + other;
}

async function openChat(chat) {
  state.chat = chat;
  $('chat-title').textContent = chat.name;
  $('composer').hidden = false;
  for (const li of document.querySelectorAll('.side li')) li.classList.toggle('on', li.dataset.key === chat.type + ':' + chat.id);
  const key = chat.type + ':' + chat.id;
  state.unread[key] = 0;
  badge(key);
  markRead(chat);
  const history = await api(`/api/chat/history/${chat.type}/${chat.id}?limit=50`);
  $('messages').replaceChildren();
  for (const m of history.slice().reverse()) render(m);
  $('text').focus();
}

function badge(key) {
  const li = document.querySelector(`.side li[data-key="${key}"]`);
  if (!li) return;
  let b = li.querySelector('.unread');
  const n = state.unread[key] || 0;
  if (!n) { if (b) b.remove(); return; }
  if (!b) { b = document.createElement('span'); b.className = 'unread'; li.appendChild(b); }
  b.textContent = String(n);
}

function render(m) {
  const li = document.createElement('li');
  const system = typeof m.data === 'object' && m.data !== null;
  if (system) {
    li.className = 'system';
    li.textContent = m.data.data || '';
  } else {
    const mine = Number(m.from_id) === state.me.id;
    if (mine) li.className = 'mine';
    li.appendChild(avatarOf(m.from_avatar, m.from_name));
    const box = document.createElement('div');
    const who = document.createElement('div');
    who.className = 'who';
    who.textContent = m.from_name;
    const bubble = document.createElement('div');
    bubble.className = 'bubble';
    if (m.isremove) {
      bubble.textContent = '(消息已撤回)';
    } else if (m.type === 'image' && /^(https?:\/\/|\/public\/)/.test(m.data)) {
      const img = document.createElement('img');
      img.className = 'picture';
      img.src = m.data;
      img.alt = '图片';
      bubble.appendChild(img);
    } else {
      bubble.textContent = m.data;
    }
    box.append(who, bubble);
    li.appendChild(box);
  }
  li.dataset.id = m.id;
  $('messages').appendChild(li);
  $('messages').scrollTop = $('messages').scrollHeight;
}

// A message from the socket or from sync, once each.
function receive(m, seq) {
  if (seq) {
    state.lastSeq = Math.max(state.lastSeq, seq);
    localStorage.setItem(seqKey(), String(state.lastSeq));
  }
  if (!m || state.seen.has(m.id)) return;
  state.seen.add(m.id);
  if (m.showModel && m.showModel.showModelType === 'forceLogin') {
    $('status').textContent = (m.data && m.data.data) || '你的账号在其他设备登录';
    state.closing = true;
    return;
  }
  const key = keyOf(m);
  if (state.chat && key === state.chat.type + ':' + state.chat.id) {
    render(m);
    if (seq && Number(m.from_id) !== state.me.id) markRead(state.chat, seq);
  } else if (Number(m.from_id) !== state.me.id && !(seq && seq <= (state.counted[key] || 0))) {
    state.unread[key] = (state.unread[key] || 0) + 1;
    badge(key);
  }
}

async function catchUp() {
  for (;;) {
    const page = await api(`/api/chat/sync?since=${state.lastSeq}&limit=500`);
    for (const row of page.rows) if (row.type === 'singleChat') receive(row.data, row.seq);
    state.lastSeq = Math.max(state.lastSeq, page.last_seq);
    localStorage.setItem(seqKey(), String(state.lastSeq));
    if (!page.has_more) return;
  }
}

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  const ws = new WebSocket(`${scheme}://${location.host}/ws?token=${encodeURIComponent(state.token)}`);
  state.ws = ws;
  ws.onopen = () => {
    $('status').textContent = '已连接';
    // What arrived while this page was away.
    catchUp().catch((e) => { $('status').textContent = e.message; });
  };
  ws.onmessage = (ev) => {
    let frame;
    try { frame = JSON.parse(ev.data); } catch (e) { return; }
    if (frame.type === 'ping') ws.send(JSON.stringify({ type: 'pong' }));
    if (frame.type === 'singleChat') receive(frame.data, frame.seq);
    // What I sent from my other device.
    if (frame.type === 'sent') receive(frame.data);
    if (frame.type === 'system' && frame.token) saveToken(frame.token);
    // My own read mark (this or another device): the server's count for that chat.
    if (frame.type === 'read' && frame.data && Number(frame.data.from_id) === state.me.id && 'unread' in frame.data) {
      const key = frame.data.chatType + ':' + frame.data.id;
      if (!(state.chat && key === state.chat.type + ':' + state.chat.id)) {
        state.unread[key] = frame.data.unread;
        badge(key);
      }
    }
  };
  ws.onclose = () => {
    $('status').textContent = '连接已断开';
    if (!state.closing) setTimeout(connect, 2000);
  };
}

async function sendMessage(type, data) {
  const chat = state.chat;
  const key = crypto.getRandomValues(new Uint32Array(2)).join('-');
  const m = await api('/api/chat/socket/sendmessage', { sendto_id: chat.id, chatType: chat.type, type, data, client_msg_id: key });
  receive(m);
}

$('composer').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('text').value;
  if (!text.trim() || !state.chat) return;
  $('text').value = '';
  sendMessage('text', text).catch((e) => { $('status').textContent = e.message; $('text').value = text; });
});

$('image').addEventListener('change', async () => {
  const file = $('image').files[0];
  if (!file || !state.chat) return;
  const form = new FormData();
  form.append('file', file);
  try {
    const uploaded = await api('/api/chat/uploadAliyun', form);
    await sendMessage('image', uploaded[0].url);
  } catch (e) {
    $('status').textContent = e.message;
  }
  $('image').value = '';
});

// A page reloaded in the same tab stays logged in.
(function resume() {
  const token = sessionStorage.getItem('im.token');
  const me = sessionStorage.getItem('im.me');
  if (token && me) {
    state.token = token;
    state.me = JSON.parse(me);
    start().catch(() => leave());
  }
})();
